#!/usr/bin/env bash
# Builds the project image (docker/Dockerfile) with BuildKit, labelled with the package version and
# the git revision.
#
#   scripts/build-image.sh [TAG]         (default TAG: living-pipeline:<package version>)
#
# Environment:
#   BASE_IMAGE  the base (default python:3.11-slim; scripts/build-base-image.sh makes one offline)
#   CA_BUNDLE   a CA bundle for a TLS-intercepting proxy, passed as the build secret `ca_bundle`
#               (default: the bundle this machine's pip trusts: PIP_CERT, SSL_CERT_FILE,
#               REQUESTS_CA_BUNDLE or pip's configured `cert`, if any)
#   DOCKER      the docker client (default: docker)
#   BEAM_BOOT   none (default) or dataflow: add Beam's boot from BEAM_SDK_IMAGE (default
#               apache/beam_python3.11_sdk:2.59.0) as the entrypoint, for Dataflow's custom SDK container
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)"
tag="${1:-living-pipeline:${version}}"
base_image="${BASE_IMAGE:-python:3.11-slim}"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
  revision="${revision}-dirty"
fi
ca_bundle="${CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-${REQUESTS_CA_BUNDLE:-}}}}"
if [ -z "$ca_bundle" ] && command -v pip >/dev/null; then
  ca_bundle="$(pip config list 2>/dev/null | sed -n "s/^[a-z:]*\.cert='\(.*\)'$/\1/p" | head -n 1)"
fi
docker="${DOCKER:-docker}"

# The CA secret needs BuildKit: the buildx plugin, or a client older than 23 with BuildKit built in.
if "$docker" buildx version >/dev/null 2>&1; then
  build=("$docker" buildx build --load)
else
  client_major="$("$docker" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)"
  if [ -z "$client_major" ] || [ "$client_major" -ge 23 ]; then
    for candidate in /usr/bin/docker /usr/local/bin/docker; do
      major="$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)"
      if [ -n "$major" ] && [ "$major" -lt 23 ]; then docker="$candidate"; client_major="$major"; break; fi
    done
  fi
  if [ -z "$client_major" ] || [ "$client_major" -ge 23 ]; then
    echo "build-image: '$docker' has no BuildKit; install the buildx plugin (Debian: docker-buildx)" >&2
    exit 1
  fi
  export DOCKER_BUILDKIT=1
  build=("$docker" build)
fi

args=(--file docker/Dockerfile --tag "$tag"
      --build-arg "BASE_IMAGE=${base_image}" --build-arg "VERSION=${version}"
      --build-arg "REVISION=${revision}" --build-arg "BEAM_BOOT=${BEAM_BOOT:-none}")
if [ -n "${BEAM_SDK_IMAGE:-}" ]; then
  args+=(--build-arg "BEAM_SDK_IMAGE=${BEAM_SDK_IMAGE}")
fi
if [ -n "$ca_bundle" ]; then
  if [ ! -r "$ca_bundle" ]; then
    echo "build-image: CA bundle '$ca_bundle' cannot be read; set CA_BUNDLE to a readable PEM file" >&2
    exit 1
  fi
  args+=(--secret "id=ca_bundle,src=${ca_bundle}")
fi

"${build[@]}" "${args[@]}" .
echo "Built ${tag} (base ${base_image}, revision ${revision}): $("$docker" image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.2f GB", $1 / 1e9}') uncompressed"
