#!/usr/bin/env bash
# Stops the port-forwards scripts/kind-up.sh started and deletes its kind cluster. The state folder
# (KIND_DATA_DIR, default ./kind-data: published models, statistics) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="living-pipeline"
pids_file="${KIND_DATA_DIR:-kind-data}/port-forward.pids"

if [ -f "$pids_file" ]; then
  while read -r pid; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
    fi
  done < "$pids_file"
  rm -f "$pids_file"
fi
if ! command -v kind >/dev/null; then
  echo "kind-down: 'kind' not found; nothing to delete" >&2
  exit 1
fi
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind delete cluster --name "$cluster"
else
  echo "No kind cluster named $cluster"
fi
