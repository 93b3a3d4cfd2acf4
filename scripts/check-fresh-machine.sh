#!/usr/bin/env bash
# Proves that `make test`'s set-up step works on a fresh Debian machine: a container of the project's
# own offline Debian base image (scripts/build-base-image.sh: no shellcheck, no Chromium, no
# PostgreSQL, no npm, no git) runs scripts/system-packages.sh, first as a user who cannot install
# (it must stop with one line naming the install command), then as root (it must install), and then
# every system tool the suite needs must be there and run.
#
#   scripts/check-fresh-machine.sh        (what `make test-fresh-machine` runs; CI runs it after make test)
#
# Needs a Docker engine and debootstrap: as root with apt-get, missing ones are installed and dockerd
# is started; otherwise one line says what to install. Environment: BASE_IMAGE (default
# living-pipeline-base:bookworm, built if absent), DOCKER (default docker).
set -euo pipefail
cd "$(dirname "$0")/.."

base_image="${BASE_IMAGE:-living-pipeline-base:bookworm}"
docker="${DOCKER:-docker}"

packages=()
# A Docker engine: one that answers, or Debian's (a docker client alone is not enough).
if ! "$docker" info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
  packages+=(docker.io)
fi
command -v debootstrap >/dev/null || packages+=(debootstrap)
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "check-fresh-machine: needs ${packages[*]}: run 'sudo apt-get install -y ${packages[*]}' and start dockerd" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
if ! "$docker" info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null; then
    echo "check-fresh-machine: no Docker engine answers: start one (sudo dockerd &) and run this again" >&2
    exit 1
  fi
  echo "Starting dockerd (log: /tmp/dockerd.log); it stops when this check ends"
  dockerd >/tmp/dockerd.log 2>&1 &
  dockerd_pid=$!
  trap 'kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 60); do
    "$docker" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$docker" info >/dev/null 2>&1 || { echo "check-fresh-machine: dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi
if ! "$docker" image inspect "$base_image" >/dev/null 2>&1; then
  scripts/build-base-image.sh "$base_image"
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
