"""The images a node plane runs, built by the project's own scripts into a storage of the session's own.

- the operator: `hack/image.sh` (the Dockerfile, as `make image` builds it) on a stand-in Python base from Debian
  packages (`hack/standin-base.sh`: no registry is reachable here);
- the test clients: the same stand-in with Node.js and openssl (the partner guide's Node client, openssl s_server).

Every build starts from an empty storage (no layer cache), so a broken Dockerfile fails here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cluster import ROOT

STANDIN_BASE = "localhost/python-standin:3.11-bookworm"
OPERATOR_IMAGE = "localhost/mtls-operator"
OPERATOR_TAG = "node-test"
CLIENTS_IMAGE = "localhost/mtls-operator-test/clients:bookworm"


@dataclass(frozen=True)
class BuiltImages:
    operator_archive: Path
    clients_archive: Path
    seconds: dict[str, float]
    operator_size_bytes: int
    storage: Path  # the session's buildah storage (the stand-in base is in it)


def _run(cmd: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("ab") as out:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=out, cwd=ROOT)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}:\n{log.read_text()[-4000:]}")
    return proc.stdout.decode()


def build_images(workdir: Path) -> BuiltImages:
    storage = workdir / "storage"
    env = {**os.environ, "BUILDAH_ROOT": str(storage)}
    log = workdir / "build.log"
    seconds: dict[str, float] = {}
    start = time.monotonic()
    _run([str(ROOT / "hack" / "standin-base.sh"), STANDIN_BASE], env, log)
    seconds["standin base"] = time.monotonic() - start
    start = time.monotonic()
    operator_archive = workdir / "operator.tar"
    _run(
        [str(ROOT / "hack" / "image.sh")],
        {**env, "IMAGE": f"{OPERATOR_IMAGE}:{OPERATOR_TAG}", "PYTHON_IMAGE": STANDIN_BASE,
         "IMAGE_ARCHIVE": str(operator_archive)},
        log,
    )  # fmt: skip
    seconds["operator image"] = time.monotonic() - start
    start = time.monotonic()
    clients_archive = workdir / "clients.tar"
    _run([str(ROOT / "hack" / "standin-base.sh"), CLIENTS_IMAGE], {**env, "STANDIN_PACKAGES": "nodejs,openssl"}, log)
    storage_ref = f"containers-storage:[overlay@{storage}/root+{storage}/run]"
    archive_ref = f"docker-archive:{clients_archive}:{CLIENTS_IMAGE}"
    _run(["skopeo", "copy", "--quiet", storage_ref + CLIENTS_IMAGE, archive_ref], env, log)
    seconds["clients image"] = time.monotonic() - start
    return BuiltImages(operator_archive, clients_archive, seconds, operator_archive.stat().st_size, storage)


def build_release_image(images: BuiltImages, tree: Path, reference: str, archive: Path) -> Path:
    """A previous release's image from its own, unmodified Dockerfile (its FROM names the pinned official base,
    which is the stand-in here: tagged under that name, and nothing is pulled)."""
    storage = images.storage
    env = {**os.environ, "BUILDAH_ROOT": str(storage)}
    log = archive.with_suffix(".log")
    base = next(line.split()[1] for line in (tree / "Dockerfile").read_text().splitlines() if line.startswith("FROM "))
    qualified = base if "/" in base.split(":")[0] else f"docker.io/library/{base}"
    _run(["buildah", "--root", f"{storage}/root", "--runroot", f"{storage}/run", "tag", STANDIN_BASE, qualified],
         env, log)  # fmt: skip
    build = {"CONTEXT": str(tree), "PULL": "never", "IMAGE": reference, "IMAGE_ARCHIVE": str(archive)}
    _run([str(ROOT / "hack" / "image.sh")], {**env, **build}, log)
    return archive


SOFTHSM_BASE = "localhost/python-standin-softhsm:3.11-bookworm"
SOFTHSM_TAG = "node-test-softhsm"


def build_softhsm_image(images: BuiltImages, archive: Path) -> Path:
    """The operator image with a PKCS#11 library in it (Debian's softhsm2 and what it links against), as a user
    builds one for a vendor's HSM client: the same Dockerfile on a base that has the library."""
    env = {**os.environ, "BUILDAH_ROOT": str(images.storage)}
    log = archive.with_suffix(".log")
    _run([str(ROOT / "hack" / "standin-base.sh"), SOFTHSM_BASE], {**env, "STANDIN_PACKAGES": "softhsm2"}, log)
    image = {"IMAGE": f"{OPERATOR_IMAGE}:{SOFTHSM_TAG}", "PYTHON_IMAGE": SOFTHSM_BASE, "IMAGE_ARCHIVE": str(archive)}
    _run([str(ROOT / "hack" / "image.sh")], {**env, **image}, log)
    return archive


def remove_storage(workdir: Path) -> None:
    """containers/storage keeps its overlay directory mounted on itself: unmount before deleting."""
    storage = (workdir / "storage").resolve()
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(storage))), key=len, reverse=True):
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", mount], check=True, capture_output=True)
    shutil.rmtree(storage, ignore_errors=True)  # about 1 GB of layers per session
