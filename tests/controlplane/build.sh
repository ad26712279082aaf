#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules once per machine and caches them outside
# the repo, keyed by version. Prints the cache directory holding the binaries. A second run is a no-op.
#
# K8S_VERSION picks the Kubernetes version (default: the newest, this directory's go.mod). Other supported versions
# each have a wrapper module in versions/<minor>/ that builds only kube-apiserver and kube-controller-manager; their
# etcd is the newest build's (etcd v3.7 serves every supported apiserver).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
newest="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")"
wanted="${K8S_VERSION:-${newest#v}}"
wanted="v${wanted#v}"
module="$here"
if [[ "$wanted" != "$newest" ]]; then
  module=""
  for candidate in "$here"/versions/*/go.mod; do
    if grep -Eq "^require k8s.io/kubernetes $wanted\$|^[[:space:]]k8s.io/kubernetes $wanted\$" "$candidate"; then
      module="$(dirname "$candidate")"
    fi
  done
  if [[ -z "$module" ]]; then
    echo "K8S_VERSION=$wanted: no wrapper module for it (the newest is $newest; others: $(ls "$here/versions" | tr '\n' ' '))" >&2
    exit 2
  fi
fi
k8s_version="$wanted"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$here/go.mod")"
root="${MTLS_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtls-operator/controlplane}"
cache="$root/k8s-${k8s_version}-etcd-${etcd_version}-b3"  # bump -bN when build flags change
if [[ -x "$cache/kube-apiserver" && -x "$cache/kube-controller-manager" && -x "$cache/etcd" ]]; then
  echo "$cache"
  exit 0
fi
mkdir -p "$cache"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
start=$(date +%s)
echo "building kube-apiserver and kube-controller-manager ${k8s_version} and etcd ${etcd_version} into $cache (first run only; takes several minutes)" >&2
# Build into temporary names and rename, so an interrupted build never leaves a half-written binary in the cache.
if [[ "$module" == "$here" ]]; then
  (cd "$module" && go build -trimpath -ldflags="-s -w" -o "$cache/etcd.tmp" go.etcd.io/etcd/server/v3)
else
  newest_cache="$(K8S_VERSION="$newest" "$here/build.sh")"
  cp "$newest_cache/etcd" "$cache/etcd.tmp"
fi
# A module build has no git metadata: stamp the version, as Kubernetes' own build does (clients and helm read it,
# and the apiserver derives its compatibility version from it).
minor="$(echo "$k8s_version" | cut -d. -f2)"
version_pkg="k8s.io/component-base/version"
ldflags="-s -w -X $version_pkg.gitVersion=$k8s_version -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor"
ldflags="$ldflags -X $version_pkg.gitTreeState=clean -X $version_pkg.buildDate=1970-01-01T00:00:00Z"
cd "$module"
go build -trimpath -ldflags="$ldflags" -o "$cache/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags="$ldflags" -o "$cache/kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager
mv "$cache/etcd.tmp" "$cache/etcd"
mv "$cache/kube-apiserver.tmp" "$cache/kube-apiserver"
mv "$cache/kube-controller-manager.tmp" "$cache/kube-controller-manager"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$cache"
