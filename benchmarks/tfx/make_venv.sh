#!/bin/sh
# Creates the TFX 1.16 virtual environment the side-by-side benchmark compares with (not part of
# `make test`): tfx and ml-pipelines-sdk 1.16.0 declare Python < 3.11 but run on 3.11, so their wheels
# are installed without that check, with the same TFX-library stack as ours (constraints.txt) and this
# project itself (without its dependencies), so both sides train the same module.
#   benchmarks/tfx/make_venv.sh [VENV]        (default .venv-tfx)
set -eu
venv=${1:-.venv-tfx}
python=${PYTHON:-python3.11}
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import tfx' 2>/dev/null; then
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -U pip wheel setuptools
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --ignore-requires-python \
  tfx==1.16.0 ml-pipelines-sdk==1.16.0 -d "$wheels"
"$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python \
  "$wheels"/tfx-1.16.0-*.whl "$wheels"/ml_pipelines_sdk-1.16.0-*.whl \
  tensorflow==2.16.2 tensorflow-data-validation==1.16.1 tensorflow-transform==1.16.0 \
  tensorflow-model-analysis==0.47.1 tfx-bsl==1.16.1 ml-metadata==1.16.0 'apache-beam[gcp]==2.59.0' \
  palmerpenguins
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -e .
