#!/usr/bin/env bash
# Runs the operator in the foreground against the cluster in KUBECONFIG (or ~/.kube/config) when one answers,
# otherwise starts the local control plane (make cluster-up) and uses it. Installs/updates the CRD first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "using the cluster of $(kubectl config current-context)"
else
  if ! KUBECONFIG="$PWD/.cluster/kubeconfig" kubectl version --request-timeout=5s >/dev/null 2>&1; then
    make --no-print-directory cluster-up
  fi
  export KUBECONFIG="$PWD/.cluster/kubeconfig"
  echo "using the local control plane: export KUBECONFIG=$KUBECONFIG (stop it with make cluster-down)"
fi
kubectl apply -f manifests/crd/
kubectl wait --for condition=established --timeout=60s crd/mtlscertificates.mtls.dev >/dev/null
exec .venv/bin/mtls-operator run --all-namespaces --metrics-port "${METRICS_PORT:-8080}"
