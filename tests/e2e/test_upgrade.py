"""An upgrade from the previous release (CHANGELOG.md records its commit) to HEAD, as a user runs it: the previous
chart installed with `helm install` and its operator running, certificates of every signer in every state, then
`helm upgrade` to HEAD's chart and HEAD's operator. Nothing a user has may be lost: the CRD becomes HEAD's, every
certificate stays Ready or keeps waiting with the very CSR the partner has, no key is regenerated, the old status is
read by the new operator, and a field added since is accepted and kept.

The operator runs as a process (from the release's own source, on this venv's dependencies); with a kubelet node
the same would run as Pods of the Deployment (the node issue).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.cluster import (
    CA_SIGNER,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_ca_secret,
    helm,
    own_control_plane,
    put_signed,
    wait_for,
    wait_ready,
)
from harness.releases import checkout, previous_release

ROOT = Path(__file__).resolve().parents[2]
NS = "apps"
RELEASE, RELEASE_NS = "mtls", "mtls-system"


def status_csr(kubectl: Kubectl, name: str) -> str:
    return wait_for(
        lambda: ((kubectl.get("mtlscertificate", name, NS) or {}).get("status") or {}).get("csr"),
        timeout=60,
        what=f"{name} status.csr",
    )


def crd_spec_fields(kubectl: Kubectl) -> set[str]:
    crd = kubectl.get("crd", "mtlscertificates.mtls.dev", "")
    assert crd is not None
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return set(schema["properties"]["spec"]["properties"])


def snapshot(kubectl: Kubectl, names: list[str]) -> dict[str, dict]:
    """What must survive the upgrade: each certificate's status and its key Secret's bytes."""
    out = {}
    for name in names:
        obj = kubectl.get("mtlscertificate", name, NS)
        assert obj is not None
        live = kubectl.secret_data(obj["spec"]["secretName"], NS)
        out[name] = {"status": obj["status"], "key": (live or {}).get("tls.key"), "crt": (live or {}).get("tls.crt")}
    return out


def test_upgrade_from_the_previous_release_keeps_every_certificate_key_and_csr(tmp_path: Path) -> None:
    release = previous_release()
    old = checkout(release, tmp_path / f"release-{release.version}", "operator", "charts", "manifests")
    partner = Partner(tmp_path / "partner")
    with own_control_plane(tmp_path / "plane", crd=False) as (plane, kubectl):
        helm(plane.kubeconfig, "install", RELEASE, str(old / "charts" / "mtls-operator"),
             "-n", RELEASE_NS, "--create-namespace")  # fmt: skip
        kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/mtlscertificates.mtls.dev")
        before_fields = crd_spec_fields(kubectl)
        assert "publishCA" not in before_fields, "the previous release's CRD is what the cluster has now"
        kubectl.run("create", "namespace", NS)
        create_ca_secret(kubectl, NS, partner)

        # --- the previous release at work ---------------------------------------------------------------------
        previous = OperatorProcess(
            plane.kubeconfig, _dir(tmp_path / "previous-logs"), ["-n", NS],
            command=[sys.executable, "-m", "mtls_operator"], env={"PYTHONPATH": str(old / "operator")},
        )  # fmt: skip
        previous.start()
        assert f"version {release.version}" in previous_version(previous), "the previous release's code runs"
        kubectl.apply(certificate_manifest("waiting"), NS)
        kubectl.apply(certificate_manifest("signed"), NS)
        kubectl.apply(certificate_manifest("internal", spec=CA_SIGNER), NS)
        partner_csr = partner.openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "p.key",
            "-subj", "/C=IE/O=Partner/CN=outbound.partner.example",
        ).decode()  # fmt: skip
        kubectl.apply(
            certificate_manifest(
                "outbound", common_name="outbound.partner.example", spec={**CA_SIGNER, "csr": partner_csr}
            ),
            NS,
        )
        waiting_csr = status_csr(kubectl, "waiting")
        put_signed(kubectl, NS, "signed-signed", {"tls.crt": partner.sign(status_csr(kubectl, "signed"))})
        for name in ("signed", "internal", "outbound"):
            wait_ready(kubectl, NS, name, timeout=60)
        names = ["waiting", "signed", "internal", "outbound"]
        before = snapshot(kubectl, names)
        previous.stop()

        # --- helm upgrade to HEAD -----------------------------------------------------------------------------
        upgraded = helm(plane.kubeconfig, "upgrade", RELEASE, str(ROOT / "charts" / "mtls-operator"),
                        "-n", RELEASE_NS, "--take-ownership")  # fmt: skip
        assert "has been upgraded" in upgraded.stdout
        after_fields = crd_spec_fields(kubectl)
        assert before_fields <= after_fields, f"fields lost: {before_fields - after_fields}"
        assert {"publishCA", "secretDeletionPolicy", "keystores", "csrPolicy"} <= after_fields, "HEAD's CRD"
        crd = kubectl.get("crd", "mtlscertificates.mtls.dev", "")
        assert crd is not None and crd["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep"

        head = OperatorProcess(plane.kubeconfig, _dir(tmp_path / "head-logs"), ["-n", NS])
        head.start()
        try:
            # Each certificate is reconciled by HEAD (its metrics series exists), then compared with before.
            wait_for(lambda: all(_series(head, n) for n in names), timeout=60, what="HEAD reconciled all four")
            after = snapshot(kubectl, names)
            for name in ("signed", "internal", "outbound"):
                assert condition({"status": after[name]["status"]}).get("status") == "True", name
                assert after[name]["crt"] == before[name]["crt"], f"{name}: the certificate in service was replaced"
                # The same number; 0.2.0 prints it as `openssl x509 -serial` does (an even count of hex digits).
                serials = after[name]["status"]["serialNumber"], before[name]["status"]["serialNumber"]
                assert int(serials[0], 16) == int(serials[1], 16), name
            assert after["waiting"]["status"]["csr"] == waiting_csr, "the CSR the partner has is still the one"
            for name in names:
                assert after[name]["key"] == before[name]["key"], f"{name}: key regenerated or lost"
            assert _metric(head, "mtls_operator_private_keys_generated_total") == 0.0

            # The old status is read by the new operator: the partner's signature of the old CSR is accepted.
            put_signed(kubectl, NS, "waiting-signed", {"tls.crt": partner.sign(waiting_csr)})
            wait_ready(kubectl, NS, "waiting", timeout=60)

            # A field added since the previous release is accepted and kept (it was pruned before the upgrade).
            kubectl.apply(
                certificate_manifest("published", spec={**CA_SIGNER, "publishCA": {"configMapName": "trust"}}), NS
            )
            obj = kubectl.get("mtlscertificate", "published", NS)
            assert obj is not None and obj["spec"]["publishCA"] == {"configMapName": "trust"}
            wait_for(lambda: kubectl.get("configmap", "trust", NS), timeout=60, what="publishCA ConfigMap")
            assert "Traceback" not in head.logs()
        finally:
            head.stop()

        # helm uninstall keeps the CRD, so no MtlsCertificate is cascaded away.
        helm(plane.kubeconfig, "uninstall", RELEASE, "-n", RELEASE_NS)
        assert kubectl.get("mtlscertificate", "signed", NS) is not None


def previous_version(op: OperatorProcess) -> str:
    return op.metrics().split("mtls_operator_build_info{", 1)[1].split("}", 1)[0].replace('="', " ").replace('"', "")


def _series(op: OperatorProcess, name: str) -> bool:
    return f'name="{name}"' in op.metrics()


def _metric(op: OperatorProcess, name: str) -> float:
    for line in op.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_kubectl_apply_of_heads_manifests_upgrades_the_previous_releases_crd(tmp_path: Path) -> None:
    """The other install path: `kubectl apply -k manifests/` of the previous release, then of HEAD."""
    release = previous_release()
    old = checkout(release, tmp_path / f"release-{release.version}", "manifests")
    with own_control_plane(tmp_path / "plane", crd=False, controller_manager=False) as (_, kubectl):
        kubectl.run("apply", "-k", str(old / "manifests"))
        kubectl.run("wait", "--for", "condition=established", "--timeout=60s", "crd/mtlscertificates.mtls.dev")
        assert "publishCA" not in crd_spec_fields(kubectl)
        kubectl.run("apply", "-k", str(ROOT / "manifests"))
        assert {"publishCA", "secretDeletionPolicy", "keystores", "csrPolicy"} <= crd_spec_fields(kubectl)
