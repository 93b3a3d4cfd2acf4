#!/usr/bin/env bash
# Creates a local kind cluster with standalone Kubeflow Pipelines and this project's resources
# (manifests/), loads the project image into it and forwards the KFP UI and API to this machine.
#
#   scripts/kind-up.sh            then: python pipeline.py submit --host http://localhost:8888 ...
#   scripts/kind-down.sh          deletes the cluster and stops the port-forwards
#
# It waits for what a run needs (KFP's deployments), not for TF Serving: TF Serving is ready only
# once it has loaded a model, which exists only after the first run publishes one.
#
# Environment: IMAGE (default living-pipeline:<package version>, as scripts/build-image.sh tags it),
# KIND_DATA_DIR (default ./kind-data: the node's /mnt/living-pipeline, for the optional state volume,
# manifests/state-volume), UI_PORT (default 8080), API_PORT (default 8888), WAIT_SECONDS (default 900).
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="living-pipeline"
version="$(sed -n 's/^ *version="\([^"]*\)".*/\1/p' setup.py)"
image="${IMAGE:-living-pipeline:${version}}"
data_dir="$(mkdir -p "${KIND_DATA_DIR:-kind-data}" && cd "${KIND_DATA_DIR:-kind-data}" && pwd)"
ui_port="${UI_PORT:-8080}"
api_port="${API_PORT:-8888}"
wait_seconds="${WAIT_SECONDS:-900}"
# The KFP backend version: the one manifests/kfp pins.
kfp_version="$(sed -n 's/.*platform-agnostic?ref=\([0-9.]*\).*/\1/p' manifests/kfp/kustomization.yaml)"
# The kind release whose node image manifests/kind/cluster.yaml pins (a node image is built for one
# kind release); .github/workflows/kind-e2e.yml installs the same.
kind_version="v0.27.0"

for tool in kind kubectl docker curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "kind-up: '$tool' not found; install it (kind: https://kind.sigs.k8s.io/docs/user/quick-start/)" >&2
    exit 1
  fi
done
found_kind="$(kind version | awk '{print $2}')"
if [ "$found_kind" != "$kind_version" ]; then
  echo "kind-up: kind $found_kind found, but manifests/kind/cluster.yaml's node image is built for kind $kind_version: install it (go install sigs.k8s.io/kind@$kind_version)" >&2
  exit 1
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  echo "kind-up: image $image not found; build it with 'make image' (or set IMAGE)" >&2
  exit 1
fi

# The stages run as the image's non-root user: the state folders must be writable for it.
mkdir -p "$data_dir/serving" "$data_dir/statistics"
chmod 0777 "$data_dir/serving" "$data_dir/statistics"

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  echo "Cluster $cluster exists: reusing it"
else
  config="$(mktemp)"
  trap 'rm -f "$config"' EXIT
  sed "s|hostPath: ./kind-data|hostPath: ${data_dir}|" manifests/kind/cluster.yaml > "$config"
  kind create cluster --config "$config" --wait 120s
fi
kubectl config use-context "kind-${cluster}" >/dev/null

# Before the manifests: TF Serving's model-mirror container runs this image.
echo "Loading $image into the cluster"
kind load docker-image "$image" --name "$cluster"

echo "Installing Kubeflow Pipelines ${kfp_version} (platform-agnostic) and the project's resources"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${kfp_version}"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k manifests/kfp
# KFP's deployments, not the project's: TF Serving cannot be ready before the first push.
echo "Waiting (up to ${wait_seconds} s) for KFP's deployments to be available"
kubectl -n kubeflow wait --for=condition=Available --timeout="${wait_seconds}s" deployment \
  --selector 'app.kubernetes.io/part-of!=living-pipeline'

pids_file="$data_dir/port-forward.pids"
: > "$pids_file"
kubectl -n kubeflow port-forward svc/ml-pipeline-ui "${ui_port}:80" >"$data_dir/port-forward-ui.log" 2>&1 &
echo $! >> "$pids_file"
kubectl -n kubeflow port-forward svc/ml-pipeline "${api_port}:8888" >"$data_dir/port-forward-api.log" 2>&1 &
echo $! >> "$pids_file"
for _ in $(seq 60); do
  if curl -fsS "http://localhost:${api_port}/apis/v2beta1/healthz" >/dev/null 2>&1; then
    echo "KFP is ready: UI http://localhost:${ui_port}, API http://localhost:${api_port}"
    echo "Submit: python pipeline.py submit --host http://localhost:${api_port} --kfp-s3-endpoint http://minio-service.kubeflow:9000 \\"
    echo "          --param serving_root=s3://mlpipeline/living-pipeline/serving --param statistics_root=s3://mlpipeline/living-pipeline/statistics --wait"
    exit 0
  fi
  sleep 2
done
echo "kind-up: the KFP API does not answer on http://localhost:${api_port}; see $data_dir/port-forward-api.log" >&2
exit 1
