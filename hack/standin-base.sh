#!/usr/bin/env bash
# Builds a stand-in for the Dockerfile's Python base image from Debian packages, for machines that can reach
# Debian's mirror but no container registry (the test plane's node): `mmdebstrap --variant=minbase` of bookworm
# with Python 3.11, pip and venv, imported into buildah's storage as $1 (default localhost/python-standin:3.11-bookworm).
# Extra Debian packages for the image go in STANDIN_PACKAGES (the test clients' image adds nodejs and openssl).
# Debian's Python is 3.11.2, the pinned image's is 3.11.14: close enough to run the operator, not to release it.
set -euo pipefail
name="${1:-localhost/python-standin:3.11-bookworm}"
packages="python3,python3-pip,python3-venv,ca-certificates${STANDIN_PACKAGES:+,$STANDIN_PACKAGES}"
work="$(mktemp -d -t mtls-standin.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# The merged-/usr hook keeps usrmerge (and with it perl) out of the image: 152 MB instead of 248 MB.
mmdebstrap --quiet --quiet --variant=minbase --include="$packages" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --customize-hook='rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
  bookworm "$work/rootfs.tar" >&2
# PEP 668's marker is removed above: the Dockerfile's final stage installs into the system Python, as the
# official image allows.
storage=()  # BUILDAH_ROOT: a storage of its own, as hack/image.sh takes it
if [[ -n "${BUILDAH_ROOT:-}" ]]; then storage=(--root "$BUILDAH_ROOT/root" --runroot "$BUILDAH_ROOT/run"); fi
container="$(buildah "${storage[@]}" from scratch)"
buildah "${storage[@]}" add "$container" "$work/rootfs.tar" / >/dev/null
buildah "${storage[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd /usr/bin/python3 "$container"
buildah "${storage[@]}" commit --quiet --rm "$container" "$name" >/dev/null
echo "$name"
