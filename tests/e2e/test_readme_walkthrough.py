"""The README's five-minute walk, run as written: its shell blocks, in order, against the real control plane with the
operator running. A README command that stops working fails here, not in a new user's first five minutes."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

from harness.cluster import ROOT, Kubectl, OperatorProcess

SECTION = "## Five minutes"


def walkthrough_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.index("\n## ", start + len(SECTION))
    return re.findall(r"^```sh\n(.*?)^```$", readme[start:end], re.MULTILINE | re.DOTALL)


def test_the_readme_walkthrough_runs_as_written(kubectl: Kubectl, operator: OperatorProcess, tmp_path: Path) -> None:
    blocks = walkthrough_blocks()
    assert len(blocks) == 3, "the walk is: apply and csr, the partner signs, import and check"
    # The walk uses the context's namespace, as a user's kubectl does: a kubeconfig of its own pointing at a fresh one.
    namespace = f"readme-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(kubectl.env["KUBECONFIG"], kubeconfig)
    env = {**kubectl.env, "KUBECONFIG": str(kubeconfig)}
    subprocess.run(["kubectl", "config", "set-context", "--current", f"--namespace={namespace}"], env=env, check=True)
    (tmp_path / "manifests").symlink_to(ROOT / "manifests")  # the README's paths are relative to a clone
    outputs = []
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, (
            f"README block failed:\n{block}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        outputs.append(done.stdout)
    assert "-----BEGIN CERTIFICATE REQUEST-----" in (tmp_path / "client.csr").read_text()
    final = outputs[-1]
    assert re.search(r"apata-client\s+True\s+Ready", final), final  # `kubectl get mtlscert` after the import
    assert "subject=" in final and "notAfter=" in final
    issued = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "client.crt"), "-noout", "-serial"], capture_output=True, text=True
    ).stdout
    in_service = kubectl.run(
        "get", "secret", "apata-client-tls", "-n", namespace, "-o", "jsonpath={.data.tls\\.crt}"
    ).stdout
    served = subprocess.run(
        ["bash", "-c", "base64 -d | openssl x509 -noout -serial"], input=in_service, capture_output=True, text=True
    ).stdout
    assert issued and served == issued, "the certificate in service is the one the partner signed"
