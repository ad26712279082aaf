#!/usr/bin/env bash
# Builds the node's parts once per machine and caches them outside the repo, keyed by version, as
# build.sh does for the control plane: kubelet, kube-scheduler and kube-proxy from the same
# k8s.io/kubernetes module and replace block (tests/controlplane/go.mod), and the pause (sandbox) binary from the
# module's own build/pause/linux/pause.c (no registry to pull it from here). Prints the cache directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module_dir="$here"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$module_dir/go.mod")"
cache="${MTLS_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtls-operator/controlplane}/node-${k8s_version}-b1"  # bump -bN when build flags change
if [[ -x "$cache/kubelet" && -x "$cache/kube-scheduler" && -x "$cache/kube-proxy" && -x "$cache/pause" ]]; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache"
cd "$module_dir"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
start=$(date +%s)
echo "building kubelet, kube-scheduler and kube-proxy ${k8s_version} into $cache (first run only; takes several minutes)" >&2
minor="$(echo "$k8s_version" | cut -d. -f2)"
version_pkg="k8s.io/component-base/version"
ldflags="-s -w -X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor"
ldflags="$ldflags -X $version_pkg.gitTreeState=clean -X $version_pkg.buildDate=1970-01-01T00:00:00Z"
# Temporary names, renamed at the end: an interrupted build never leaves a half-written binary in the cache.
for component in kubelet kube-scheduler kube-proxy; do
  go build -trimpath -ldflags="$ldflags" -o "$cache/$component.tmp" "k8s.io/kubernetes/cmd/$component"
done
module_src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)"
gcc -Os -static -o "$cache/pause.tmp" "$module_src/build/pause/linux/pause.c" \
  -DVERSION="${k8s_version}"
strip "$cache/pause.tmp"
for component in kubelet kube-scheduler kube-proxy pause; do mv "$cache/$component.tmp" "$cache/$component"; done
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$cache"
