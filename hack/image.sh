#!/usr/bin/env bash
# `make image`: builds the operator image from the Dockerfile with buildah, exactly as users build it (no Docker
# engine needed), and optionally writes it as a docker-archive (what `ctr images import` and `docker load` read).
#
#   IMAGE            the reference (default ghcr.io/mtls-operator/mtls-operator:<version>)
#   PYTHON_IMAGE     the Dockerfile's base (default: the Dockerfile's pinned python image)
#   IMAGE_ARCHIVE    also write the image to this docker-archive file
#   BUILDAH_ROOT     a storage directory of its own (root/ and run/ below it) instead of buildah's default
#   BUILD_CA_BUNDLE  a CA bundle mounted over the build's /etc/ssl/certs/ca-certificates.crt, for networks whose
#                    egress re-signs TLS (Debian's pip trusts that file); default $SSL_CERT_FILE when set
#   CONTEXT          another source tree to build (a previous release's, for the upgrade test); default this one
#   PULL=never       use only images already in local storage (the base included)
set -euo pipefail
cd "${CONTEXT:-$(dirname "$0")/..}"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' operator/mtls_operator/__init__.py)"
image="${IMAGE:-ghcr.io/mtls-operator/mtls-operator:$version}"
storage=()
source_ref="containers-storage:$image"
if [[ -n "${BUILDAH_ROOT:-}" ]]; then
  storage=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run")
  source_ref="containers-storage:[overlay@$BUILDAH_ROOT/root+$BUILDAH_ROOT/run]$image"
fi
build=(bud --layers=false --network host --tag "$image")
# buildah's default OCI runtime (crun) refuses hybrid cgroup v1 hosts; runc works everywhere.
if command -v runc >/dev/null; then build+=(--runtime "$(command -v runc)"); fi
if [[ -n "${PYTHON_IMAGE:-}" ]]; then build+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE"); fi
# A base already in local storage is used as is (a stand-in has no registry to come from).
if [[ "${PULL:-}" == never ]] || { [[ -n "${PYTHON_IMAGE:-}" ]] &&
    buildah "${storage[@]}" inspect --type image "$PYTHON_IMAGE" >/dev/null 2>&1; }; then
  build+=(--pull=never)
fi
ca_bundle="${BUILD_CA_BUNDLE:-${SSL_CERT_FILE:-}}"
if [[ -n "$ca_bundle" ]]; then build+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro"); fi
start=$SECONDS
buildah "${storage[@]}" "${build[@]}" . >&2
echo "image: built $image in $((SECONDS - start)) s" >&2
buildah "${storage[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image" >&2
if [[ -n "${IMAGE_ARCHIVE:-}" ]]; then
  rm -f "$IMAGE_ARCHIVE"
  skopeo copy --quiet "$source_ref" "docker-archive:$IMAGE_ARCHIVE:$image"
  echo "image: wrote $IMAGE_ARCHIVE ($(du -h "$IMAGE_ARCHIVE" | cut -f1))" >&2
fi
echo "$image"
