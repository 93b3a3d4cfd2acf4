#!/usr/bin/env bash
# Runs a command with a Docker engine and the offline Debian base image at hand: as root with apt-get,
# a missing engine (Debian's docker.io) or debootstrap is installed, dockerd is started if none answers
# (and stopped when the command ends), and the base image is built if absent; otherwise one line says
# what to do.
#
#   scripts/with-docker.sh COMMAND [ARG ...]     (make test-fresh-machine and make test-docker use it)
#
# Environment: OFFLINE_BASE_IMAGE (default living-pipeline-base:bookworm), DOCKER (default docker).
set -euo pipefail
cd "$(dirname "$0")/.."

base_image="${OFFLINE_BASE_IMAGE:-living-pipeline-base:bookworm}"
docker="${DOCKER:-docker}"

packages=()
# A Docker engine: one that answers, or Debian's (a docker client alone is not enough).
if ! "$docker" info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
  packages+=(docker.io)
fi
if ! "$docker" image inspect "$base_image" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || packages+=(debootstrap)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "with-docker: needs ${packages[*]}: run 'sudo apt-get install -y ${packages[*]}' and start dockerd" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
if ! "$docker" info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] || ! command -v dockerd >/dev/null; then
    echo "with-docker: no Docker engine answers: start one (sudo dockerd &) and run this again" >&2
    exit 1
  fi
  echo "Starting dockerd (log: /tmp/dockerd.log); it stops when '$*' ends"
  dockerd >/tmp/dockerd.log 2>&1 &
  dockerd_pid=$!
  trap 'kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 60); do
    "$docker" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$docker" info >/dev/null 2>&1 || { echo "with-docker: dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi
if ! "$docker" image inspect "$base_image" >/dev/null 2>&1; then
  scripts/build-base-image.sh "$base_image"
fi
"$@"
