#!/usr/bin/env bash
# Proves that `make test`'s set-up step works on a fresh Debian machine: a container of the project's
# own offline Debian base image (scripts/build-base-image.sh: no shellcheck, no Chromium, no
# PostgreSQL, no npm, no git) runs scripts/system-packages.sh, first as a user who cannot install
# (it must stop with one line naming the install command), then as root (it must install), and then
# every system tool the suite needs must be there and run.
#
#   scripts/check-fresh-machine.sh        (what `make test-fresh-machine` runs; CI runs it after make test)
#
# Needs a Docker engine and the base image: scripts/with-docker.sh installs, starts and builds what is
# missing (as root), or says in one line what to do. Environment: BASE_IMAGE (default
# living-pipeline-base:bookworm, built if absent), DOCKER (default docker).
set -euo pipefail
cd "$(dirname "$0")/.."

base_image="${BASE_IMAGE:-living-pipeline-base:bookworm}"
docker="${DOCKER:-docker}"
if [ -z "${LIVING_PIPELINE_WITH_DOCKER:-}" ]; then
  # A Docker engine and the base image first (installed, started and built as needed).
  LIVING_PIPELINE_WITH_DOCKER=1 OFFLINE_BASE_IMAGE="$base_image" exec scripts/with-docker.sh "$0" "$@"
fi

# Inside: the repository read-only at /src, the host's network (package mirrors only) and CA bundle.
# The script runs in the container's shell, so its $ expressions are meant for that shell.
# shellcheck disable=SC2016
"$docker" run --rm --network host \
  -v "$PWD:/src:ro" -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  -e PYTHON=python3 -w /src "$base_image" bash -euo pipefail -c '
for tool in git shellcheck chromium npm; do
  if command -v "$tool" >/dev/null; then echo "not a fresh machine: $tool is already there" >&2; exit 1; fi
done
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then echo "not a fresh machine: PostgreSQL is there" >&2; exit 1; fi

echo "--- as a user who cannot install"
if setpriv --reuid=65534 --regid=65534 --clear-groups scripts/system-packages.sh test 2>/tmp/refusal; then
  echo "system-packages.sh test succeeded without the tools" >&2; exit 1
fi
cat /tmp/refusal
if [ "$(wc -l < /tmp/refusal)" -ne 1 ] || ! grep -q "apt-get install -y git shellcheck chromium npm postgresql" /tmp/refusal; then
  echo "the refusal is not one line naming the install command" >&2; exit 1
fi

echo "--- as root"
scripts/system-packages.sh test
scripts/system-packages.sh test --check
git --version
shellcheck --version | sed -n 2p
chromium --headless --no-sandbox --disable-gpu --dump-dom "data:text/html,<p>fresh</p>" 2>/dev/null | grep -q "<p>fresh</p>"
echo "chromium: renders"
echo "npm $(npm --version)"
"$(ls /usr/lib/postgresql/*/bin/pg_ctl)" --version
shellcheck scripts/*.sh
echo "Every system tool make test needs is there"
'
