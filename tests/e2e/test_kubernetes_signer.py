"""signer.kubernetes against the real control plane: kube-apiserver, etcd and kube-controller-manager.

Approval is played the way a person does it (`kubectl certificate approve|deny`); a custom signer is played by
the test with openssl, writing status.certificate as a signer controller would.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)

APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"


def kubernetes_spec(signer_name: str, ca_from: str = "") -> str:
    return (
        f'  duration: "2h"\n  renewBefore: "1h"\n  signer:\n    kubernetes:\n      signerName: {signer_name}\n{ca_from}'
    )


def pending_csr_name(kubectl: Kubectl, namespace: str, name: str) -> str:
    obj = wait_certificate(
        kubectl, namespace, name, lambda o: (o.get("status") or {}).get("certificateSigningRequest"), "CSR created"
    )
    return str(obj["status"]["certificateSigningRequest"])


def csr_object(kubectl: Kubectl, name: str) -> dict | None:
    proc = kubectl.run("get", "csr", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def test_kube_apiserver_client_certificate_authenticates_to_the_apiserver(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    ca_from = "      caFrom:\n        configMapKeyRef:\n          name: kube-root-ca.crt\n          key: ca.crt\n"
    kubectl.apply(
        certificate_manifest("bot", common_name="reporting-bot", extra_spec=kubernetes_spec(APISERVER_CLIENT, ca_from)),
        namespace,
    )
    name = pending_csr_name(kubectl, namespace, "bot")
    key_before = kubectl.secret_data("bot-tls", namespace)["tls.key"]  # stored before the request was created
    csr = csr_object(kubectl, name)
    assert csr is not None
    assert csr["spec"]["signerName"] == APISERVER_CLIENT
    assert csr["spec"]["expirationSeconds"] == 7200
    assert sorted(csr["spec"]["usages"]) == ["client auth", "digital signature", "key encipherment"]
    assert csr["metadata"]["labels"]["mtls.dev/certificate"] == "bot"
    assert csr["metadata"]["labels"]["mtls.dev/namespace"] == namespace
    assert condition(kubectl.get("mtlscertificate", "bot", namespace))["reason"] == "AwaitingApproval"
    assert not (csr.get("status") or {}).get("conditions"), "the operator must never approve its own request"

    kubectl.run("certificate", "approve", name)  # a person approves; kube-controller-manager signs
    obj = wait_ready(kubectl, namespace, "bot", timeout=60)
    assert obj["status"]["revision"] == 1 and "certificateSigningRequest" not in obj["status"]
    live = kubectl.secret_data("bot-tls", namespace)
    assert live["tls.key"] == key_before
    cluster_ca = Path(kubectl.kubeconfig).parent / "pki" / "ca.crt"
    assert live["ca.crt"] == cluster_ca.read_bytes()

    (tmp_path / "bot.crt").write_bytes(live["tls.crt"])
    (tmp_path / "bot.key").write_bytes(live["tls.key"])
    config = json.loads(Path(kubectl.kubeconfig).read_text())
    config["users"][0]["user"] = {
        "client-certificate": str(tmp_path / "bot.crt"),
        "client-key": str(tmp_path / "bot.key"),
    }
    bot_config = tmp_path / "kubeconfig"
    bot_config.write_text(json.dumps(config))
    whoami = json.loads(Kubectl(bot_config).run("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == "reporting-bot"
    assert "My Company Inc." in whoami["status"]["userInfo"]["groups"]


def test_custom_signer_played_by_openssl(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    kubectl.run(
        "create", "secret", "generic", "partner-ca", "-n", namespace, f"--from-file=ca.crt={partner.ca_crt}"
    )  # fmt: skip
    ca_from = "      caFrom:\n        secretKeyRef:\n          name: partner-ca\n"
    kubectl.apply(certificate_manifest("custom", extra_spec=kubernetes_spec("example.com/partner", ca_from)), namespace)
    name = pending_csr_name(kubectl, namespace, "custom")
    request = base64.b64decode(csr_object(kubectl, name)["spec"]["request"])  # type: ignore[index]
    kubectl.run("certificate", "approve", name)
    wait_reason(kubectl, namespace, "custom", "AwaitingCertificate")
    signed = partner.sign(request, days=30).read_bytes()
    status = {"status": {"certificate": base64.b64encode(signed).decode()}}
    kubectl.run("patch", "csr", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    wait_ready(kubectl, namespace, "custom")
    live = kubectl.secret_data("custom-tls", namespace)
    assert live["tls.crt"].strip() == signed.strip()
    assert live["ca.crt"] == partner.ca_crt.read_bytes()


def test_denied_request_is_reported_and_nothing_is_regenerated(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    kubectl.apply(certificate_manifest("denied", extra_spec=kubernetes_spec("example.com/partner")), namespace)
    name = pending_csr_name(kubectl, namespace, "denied")
    key_before = kubectl.secret_data("denied-tls", namespace)["tls.key"]
    kubectl.run("certificate", "deny", name)
    obj = wait_reason(kubectl, namespace, "denied", "CSRDenied")
    assert condition(obj)["status"] == "False" and name in condition(obj)["message"]
    assert obj["status"]["phase"] == "Failed"
    assert obj["status"]["certificateSigningRequest"] == name
    warnings = [e for e in kubectl.events(namespace, "denied") if e["reason"] == "CSRDenied"]
    assert warnings and warnings[0]["type"] == "Warning"
    assert kubectl.secret_data("denied-tls", namespace)["tls.key"] == key_before


def test_request_deleted_while_pending_is_created_again_for_the_same_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    kubectl.apply(certificate_manifest("vanish", extra_spec=kubernetes_spec("example.com/partner")), namespace)
    name = pending_csr_name(kubectl, namespace, "vanish")
    first = csr_object(kubectl, name)
    key_before = kubectl.secret_data("vanish-tls", namespace)["tls.key"]
    kubectl.run("delete", "csr", name)  # as the 24 h cleaner, or a person, would
    again = wait_for(
        lambda: (obj := csr_object(kubectl, name)) and obj["metadata"]["uid"] != first["metadata"]["uid"] and obj,  # type: ignore[index]
        what="CSR created again",
    )
    assert again["spec"]["request"] == first["spec"]["request"]  # type: ignore[index]
    assert kubectl.secret_data("vanish-tls", namespace)["tls.key"] == key_before


def test_operator_restart_between_request_and_approval(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    kubectl.apply(certificate_manifest("restart", extra_spec=kubernetes_spec(APISERVER_CLIENT)), namespace)
    name = pending_csr_name(kubectl, namespace, "restart")
    key_before = kubectl.secret_data("restart-tls", namespace)["tls.key"]
    operator.stop()
    kubectl.run("certificate", "approve", name)
    operator.start()
    obj = wait_ready(kubectl, namespace, "restart", timeout=60)
    assert obj["status"]["revision"] == 1
    assert kubectl.secret_data("restart-tls", namespace)["tls.key"] == key_before
    requests = json.loads(kubectl.run("get", "csr", "-l", "mtls.dev/certificate=restart", "-o", "json").stdout)
    assert [
        r["metadata"]["name"] for r in requests["items"] if r["metadata"]["labels"]["mtls.dev/namespace"] == namespace
    ] == [name]


def test_a_request_the_apiserver_refuses_is_a_condition_and_a_warning_not_a_traceback_loop(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    """O=system:masters for kube-apiserver-client: the CertificateSubjectRestriction admission plugin answers 403.
    The operator says so on the certificate, with the apiserver's words, and keeps serving everyone else."""
    tracebacks = operator.logs().count("Traceback")
    manifest = certificate_manifest("masters", common_name="kubernetes-admin", extra_spec=kubernetes_spec(
        APISERVER_CLIENT)).replace("organization: My Company Inc.", "organization: system:masters")  # fmt: skip
    kubectl.apply(manifest, namespace)
    obj = wait_reason(kubectl, namespace, "masters", "CSRRefused", timeout=60)
    message = condition(obj)["message"]
    assert "the apiserver refused CertificateSigningRequest" in message and "HTTP 403" in message, message
    assert "system:masters" in message, message
    assert any(e["reason"] == "CSRRefused" and e["type"] == "Warning" for e in kubectl.events(namespace, "masters"))
    assert operator.logs().count("Traceback") == tracebacks, "a refusal is an answer, not a crash"
    kubectl.apply(certificate_manifest("bystander", common_name="reporting-bot",
                                       extra_spec=kubernetes_spec(APISERVER_CLIENT)), namespace)  # fmt: skip
    pending_csr_name(kubectl, namespace, "bystander")  # the next one is requested as usual


def test_a_signer_name_the_platform_team_did_not_list_is_refused_before_any_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str
) -> None:
    """The session's operator lists kubernetes.io/kube-apiserver-client and example.com/*: a tenant asking for the
    kubelet-serving signer gets a condition, and the operator's ServiceAccount asks nobody anything."""
    kubectl.apply(certificate_manifest("kubelet", extra_spec=kubernetes_spec("kubernetes.io/kubelet-serving")),
                  namespace)  # fmt: skip
    obj = wait_reason(kubectl, namespace, "kubelet", "SignerNameNotAllowed", timeout=60)
    assert "kubernetes.io/kubelet-serving is not one this operator may ask for" in condition(obj)["message"]
    assert "certificateSigningRequest" not in obj["status"]
    assert kubectl.secret_data("kubelet-tls", namespace) is None, "no key for a request that is never made"
    listed = json.loads(kubectl.run("get", "csr", "-o", "json").stdout)["items"]
    assert not [c for c in listed if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
