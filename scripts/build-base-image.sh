#!/usr/bin/env bash
# Builds a Debian bookworm base image with Python 3.11 from Debian packages (debootstrap + docker
# import), for machines that cannot pull images. Only a Debian package mirror is needed.
#
#   sudo scripts/build-base-image.sh [TAG]          (default TAG: living-pipeline-base:bookworm)
#   make image BASE_IMAGE=living-pipeline-base:bookworm
#
# Environment: MIRROR (default http://deb.debian.org/debian), DOCKER (default docker).
set -euo pipefail

tag="${1:-living-pipeline-base:bookworm}"
mirror="${MIRROR:-http://deb.debian.org/debian}"
docker="${DOCKER:-docker}"

for tool in debootstrap "$docker"; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-base-image: '$tool' not found; install it (Debian: apt-get install -y debootstrap docker.io)" >&2
    exit 1
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "build-base-image: debootstrap needs root; run it with sudo" >&2
  exit 1
fi

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT

# python3 is 3.11 on bookworm; python3-venv brings ensurepip for the image's virtual environment.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror"
# No package lists, caches or logs in the image.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*

tar -C "$rootfs" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag"
echo "Built $tag: $("$docker" run --rm "$tag" python3 --version)"
