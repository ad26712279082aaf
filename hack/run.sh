#!/usr/bin/env bash
# Runs the operator in the foreground against the cluster in KUBECONFIG (or ~/.kube/config) when one answers,
# otherwise starts the local control plane (make cluster-up) and uses it. Installs/updates the CRD first.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tools_bin="${XDG_CACHE_HOME:-$HOME/.cache}/mtls-operator/bin"
if [[ -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  echo "using the cluster of $(kubectl config current-context)"
else
  if ! KUBECONFIG="$root/.cluster/kubeconfig" kubectl version --request-timeout=5s >/dev/null 2>&1; then
    make --no-print-directory cluster-up
  fi
  export KUBECONFIG="$root/.cluster/kubeconfig"
  cat <<MSG
using the local control plane (stop it with: make cluster-down). In a second shell:

  export KUBECONFIG=$KUBECONFIG
  export PATH=$root/.venv/bin:$tools_bin:\$PATH

then try:

  kubectl apply -f $root/manifests/samples/inbound-partner-signed.yaml && kubectl mtls status

MSG
fi
kubectl apply -f manifests/crd/
kubectl wait --for condition=established --timeout=60s crd/mtlscertificates.mtls.dev >/dev/null
# The operator itself waits until the new CRD's list endpoint answers (its storage initialises after Established).
exec .venv/bin/mtls-operator run --all-namespaces --kubernetes-signer --metrics-port "${METRICS_PORT:-8080}" --insecure-metrics
