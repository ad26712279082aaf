"""Revocation on the real apiserver with the operator running: MtlsRevocations, the issuers' CRLs in their
ConfigMaps, in publishCA ConfigMaps and over HTTP, judged by openssl and enforced by real servers (nginx with
ssl_crl, Node's tls `crl`) — no expected verdict written down: the servers say whether they accept a certificate."""

from __future__ import annotations

import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from harness.cluster import (
    CLUSTER_ISSUER_NAMESPACE,
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    chart_template_applied,
    condition,
    helm,
    wait_certificate,
    wait_for,
    wait_ready,
    wait_reason,
)
from harness.tlsservers import https_status, running_nginx, running_node_server, server_certificate
from mtls_operator.pki.crl import read_crl, revocation_in

DAY = 2160


def issuer(name: str, secret: str, operator: OperatorProcess, namespace: str, **crl: Any) -> str:
    url = f"http://127.0.0.1:{operator.metrics_port}/crl/mtlsissuer/{namespace}/{name}.crl"
    body = {
        "apiVersion": "mtls.dev/v1alpha1",
        "kind": "MtlsIssuer",
        "metadata": {"name": name},
        "spec": {
            "ca": {"secretName": secret},
            "policy": {"partnerCSRs": "Allow"},
            "crl": {"distributionPointURL": url, **crl},
        },
    }
    return yaml.safe_dump(body)


def issued(name: str, **spec: Any) -> dict[str, Any]:
    return {"duration": f"{DAY}h", "signer": {"issuerRef": {"kind": "MtlsIssuer", "name": name}}, **spec}


def ready_issuer(kubectl: Kubectl, namespace: str, name: str, ca: Partner, operator: OperatorProcess, **crl: Any):
    kubectl.run("create", "secret", "tls", f"{name}-ca", "-n", namespace, f"--cert={ca.ca_crt}", f"--key={ca.ca_key}")
    kubectl.apply(issuer(name, f"{name}-ca", operator, namespace, **crl), namespace)

    def crl_published() -> dict[str, Any] | None:
        obj = kubectl.get("mtlsissuer", name, namespace) or {}
        return obj if condition(obj, "CRLPublished").get("status") == "True" else None

    return wait_for(crl_published, timeout=30, what=f"MtlsIssuer {name} publishes a CRL")


def published(kubectl: Kubectl, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj = kubectl.get("mtlsrevocation", name, namespace)
        return obj if condition(obj, "Published").get("status") == "True" else None

    return wait_for(done, timeout=timeout, what=f"MtlsRevocation {name} Published")


def configmap_file(kubectl: Kubectl, namespace: str, name: str, key: str, out: Path) -> Path:
    data = (kubectl.get("configmap", name, namespace) or {}).get("data") or {}
    out.write_text(data[key])
    return out


def write_secret_files(kubectl: Kubectl, namespace: str, secret: str, out: Path) -> tuple[Path, Path | None, int]:
    data = kubectl.secret_data(secret, namespace)
    assert data is not None
    out.mkdir(parents=True, exist_ok=True)
    (out / "tls.crt").write_bytes(data["tls.crt"])
    key = None
    if data.get("tls.key"):
        key = out / "tls.key"
        key.write_bytes(data["tls.key"])
    return out / "tls.crt", key, x509.load_pem_x509_certificate(data["tls.crt"]).serial_number


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def test_revoked_certificates_are_in_every_published_crl_and_real_servers_refuse_them(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Revoking CA")
    ready_issuer(kubectl, namespace, "revoking", ca, operator)
    trust = {"publishCA": {"configMapName": "trust"}}
    for name in ("ours", "kept"):
        kubectl.apply(certificate_manifest(name, spec=issued("revoking", **trust)), namespace)
    partner = Partner(tmp_path / "partner")
    csr = partner.own_csr("/C=IE/O=Partner/CN=partner.example.com").decode()
    kubectl.apply(
        certificate_manifest("partner", common_name="partner.example.com", spec=issued("revoking", csr=csr, **trust)),
        namespace,
    )
    for name in ("ours", "kept", "partner"):
        wait_ready(kubectl, namespace, name)
    ours_crt, ours_key, ours_serial = write_secret_files(kubectl, namespace, "ours-tls", tmp_path / "ours-1")
    kept_crt, kept_key, _ = write_secret_files(kubectl, namespace, "kept-tls", tmp_path / "kept")
    partner_crt, _, partner_serial = write_secret_files(kubectl, namespace, "partner-tls", tmp_path / "partner-cert")
    assert ours_key is not None and kept_key is not None
    partner_key = partner.dir / "other.key"
    # What the issuer signs names where its CRL is.
    leaf = x509.load_pem_x509_certificate(ours_crt.read_bytes())
    points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = points[0].full_name[0].value
    assert url.endswith(f"/crl/mtlsissuer/{namespace}/revoking.crl")

    # The servers a partner runs, configured from the publishCA ConfigMap before any revocation.
    wait_for(lambda: "ca.crl" in ((kubectl.get("configmap", "trust", namespace) or {}).get("data") or {}) or None,
             what="publishCA carries the issuer's CRL")  # fmt: skip
    files = tmp_path / "server-files"
    files.mkdir()
    ca_crt = configmap_file(kubectl, namespace, "trust", "ca.crt", files / "ca.crt")
    ca_crl = configmap_file(kubectl, namespace, "trust", "ca.crl", files / "ca.crl")
    server_ca = Partner(tmp_path / "server-ca", name="Server CA")
    server_crt, server_key = server_certificate(server_ca.dir, server_ca.ca_crt, server_ca.ca_key)
    clients = {"ours": (ours_crt, ours_key), "kept": (kept_crt, kept_key), "partner": (partner_crt, partner_key)}
    with running_nginx(tmp_path / "nginx", server_crt, server_key, ca_crt, ca_crl) as nginx:
        before = {name: https_status(nginx.port, server_ca.ca_crt, *pair) for name, pair in clients.items()}
        assert before == {"ours": 200, "kept": 200, "partner": 200}, before

        kubectl.plugin("revoke", "ours", "-n", namespace, "--reason", "keyCompromise", "--comment", "INC-1")
        kubectl.plugin("revoke", "partner", "-n", namespace, "--reason", "keyCompromise")
        ours_revocation = published(kubectl, namespace, "ours")
        published(kubectl, namespace, "partner")
        assert ours_revocation["spec"]["requestedBy"], ours_revocation  # who: the plugin's authenticated user
        assert int(ours_revocation["status"]["serialNumber"], 16) == ours_serial

        # keyCompromise: ours is re-issued at once, with a new key; the partner's is reported Revoked.
        renewed = wait_certificate(kubectl, namespace, "ours", lambda o: (o.get("status") or {}).get("revision") == 2,
                                   "re-issued after keyCompromise")  # fmt: skip
        assert condition(renewed)["status"] == "True", renewed
        new_crt, new_key, new_serial = write_secret_files(kubectl, namespace, "ours-tls", tmp_path / "ours-2")
        assert new_serial != ours_serial
        assert new_key is not None and new_key.read_bytes() != ours_key.read_bytes()
        revoked = condition(wait_reason(kubectl, namespace, "partner", "Revoked"))
        assert "ask the partner for a CSR with a new key" in revoked["message"], revoked

        # The CRL in the publishCA ConfigMap lists exactly those two, with their reasons, signed by the CA.
        def new_crl() -> str | None:
            text = ((kubectl.get("configmap", "trust", namespace) or {}).get("data") or {}).get("ca.crl", "")
            crl = read_crl(text.encode()) if text else None
            return text if crl is not None and {r.serial_number for r in crl} == {ours_serial, partner_serial} else None

        crl_text = wait_for(new_crl, timeout=30, what="publishCA's ca.crl lists both revocations")
        crl = read_crl(crl_text.encode())
        assert revocation_in(crl, ours_serial)[1] == "keyCompromise"  # type: ignore[index]
        assert revocation_in(crl, partner_serial)[1] == "keyCompromise"  # type: ignore[index]
        ca_crl.write_text(crl_text)
        checked = openssl("crl", "-in", str(ca_crl), "-CAfile", str(ca.ca_crt), "-noout")
        assert checked.returncode == 0 and "verify OK" in checked.stderr + checked.stdout, checked
        for cert, wanted in ((ours_crt, False), (partner_crt, False), (kept_crt, True), (new_crt, True)):
            done = openssl("verify", "-crl_check", "-CAfile", str(ca_crt), "-CRLfile", str(ca_crl), str(cert))
            assert (done.returncode == 0) == wanted, (cert, done.stdout, done.stderr)
            if not wanted:
                assert "certificate revoked" in done.stdout + done.stderr

        # Over HTTP, the same CRL in DER: what a server that fetches it from the distribution point gets.
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.headers["Content-Type"] == "application/pkix-crl"
            served = x509.load_der_x509_crl(resp.read())
        assert {r.serial_number for r in served} == {ours_serial, partner_serial}
        assert served.is_signature_valid(x509.load_pem_x509_certificate(ca.ca_crt.read_bytes()).public_key())

        # nginx after the CRL update (reload): the revoked two are refused, the others still accepted.
        nginx.reload()
        clients["renewed"] = (new_crt, new_key)
        after = {name: https_status(nginx.port, server_ca.ca_crt, *pair) for name, pair in clients.items()}
        assert after == {"ours": 400, "kept": 200, "partner": 400, "renewed": 200}, after
        assert "certificate revoked" in nginx.error_log()
    with running_node_server(tmp_path / "node", server_crt, server_key, ca_crt, ca_crl) as port:
        node = {name: https_status(port, server_ca.ca_crt, *pair) for name, pair in clients.items()}
        assert node["kept"] == 200 and node["renewed"] == 200, node
        assert node["ours"] != 200 and node["partner"] != 200, node

    # A compromised key is never signed again: asked to renew, the partner's same CSR is refused by name.
    kubectl.plugin("renew", "partner", "-n", namespace)
    refused = condition(wait_reason(kubectl, namespace, "partner", "KeyRevoked"))
    assert "its key is never signed again" in refused["message"], refused
    data = kubectl.secret_data("partner-tls", namespace)
    assert data is not None
    assert x509.load_pem_x509_certificate(data["tls.crt"]).serial_number == partner_serial
    # The partner sends a CSR with a new key: signed, in service, not revoked.
    fresh = Partner(tmp_path / "partner-2")
    new_csr = fresh.own_csr("/C=IE/O=Partner/CN=partner.example.com").decode()
    kubectl.apply(
        certificate_manifest("partner", common_name="partner.example.com",
                             spec=issued("revoking", csr=new_csr, **trust)),
        namespace,
    )  # fmt: skip
    wait_certificate(kubectl, namespace, "partner", lambda o: condition(o).get("status") == "True", "new CSR signed")
    info = kubectl.plugin("inspect", "partner", "-n", namespace).stdout
    assert "Revoked:" in info and "keyCompromise" in info, info


def test_a_tenant_revokes_only_its_own_certificates(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    # A serial of a shared cluster issuer from a tenant's namespace: refused by name, nothing revoked.
    kubectl.run("create", "namespace", CLUSTER_ISSUER_NAMESPACE, check=False)
    ca = Partner(tmp_path / "shared", name="Shared CA")
    suffix = uuid.uuid4().hex[:6]
    shared, secret = f"shared-{suffix}", f"shared-ca-{suffix}"
    kubectl.run("create", "secret", "tls", secret, "-n", CLUSTER_ISSUER_NAMESPACE, f"--cert={ca.ca_crt}",
                f"--key={ca.ca_key}")  # fmt: skip
    body = {"apiVersion": "mtls.dev/v1alpha1", "kind": "ClusterMtlsIssuer", "metadata": {"name": shared},
            "spec": {"ca": {"secretName": secret}}}  # fmt: skip
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(body))
    elsewhere = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", elsewhere)
    spec = {"duration": f"{DAY}h", "signer": {"issuerRef": {"kind": "ClusterMtlsIssuer", "name": shared}}}
    kubectl.apply(certificate_manifest("theirs", spec=spec), elsewhere)
    theirs = wait_ready(kubectl, elsewhere, "theirs")
    serial = theirs["status"]["issuedBy"]["serialNumber"]
    assert theirs["status"]["issuedBy"]["issuer"] == f"ClusterMtlsIssuer/{shared}"

    grab = ["revoke", "grab", "-n", namespace, "--serial", serial, "--issuer", f"ClusterMtlsIssuer/{shared}"]
    proc = kubectl.plugin(*grab, "--reason", "keyCompromise", "--timeout", "20", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    refused = condition(kubectl.get("mtlsrevocation", "grab", namespace), "Published")
    assert refused["reason"] == "NotYourIssuer", refused
    # A certificate signed by the partner by hand is not ours to revoke: said so, nothing listed.
    kubectl.apply(certificate_manifest("by-hand"), namespace)
    proc = kubectl.plugin("revoke", "by-hand", "-n", namespace, "--reason", "superseded", check=False)
    assert proc.returncode == 1 and "only those issuers publish CRLs" in proc.stderr, proc.stderr

    # From the cluster issuers' namespace (the platform team's), the same serial is revoked.
    kubectl.plugin("revoke", "-n", CLUSTER_ISSUER_NAMESPACE, "--serial", serial, "--issuer",
                   f"ClusterMtlsIssuer/{shared}", "--reason", "affiliationChanged")  # fmt: skip
    assert condition(wait_reason(kubectl, elsewhere, "theirs", "Revoked"))["status"] == "False"
    status = (kubectl.get("clustermtlsissuer", shared, "") or {}).get("status") or {}
    assert status["crl"]["revokedCertificates"] == 1, status
    # The tenant's refused revocation stayed refused: the entry is the platform's only.
    assert condition(kubectl.get("mtlsrevocation", "grab", namespace), "Published")["reason"] == "NotYourIssuer"


@pytest.fixture
def revocation_policy(kubectl: Kubectl, tmp_path: Path) -> Iterator[None]:
    with chart_template_applied(kubectl, tmp_path, "revocation-policy.yaml"):
        yield


def test_who_may_revoke_is_rbac_and_the_record_names_who_did(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path, revocation_policy: None
) -> None:
    ca = Partner(tmp_path / "ca", name="Governed CA")
    ready_issuer(kubectl, namespace, "gov", ca, operator)
    kubectl.apply(certificate_manifest("svc", spec=issued("gov")), namespace)
    wait_ready(kubectl, namespace, "svc")
    # dave may create and edit certificates; erin holds the chart's revoker role here.
    kubectl.run("create", "role", "certificates", "-n", namespace, "--verb=get,list,create,update,patch",
                "--resource=mtlscertificates.mtls.dev")  # fmt: skip
    kubectl.run("create", "rolebinding", "dave", "-n", namespace, "--role=certificates", "--user=dave")
    rendered = helm(kubectl.kubeconfig, "template", "mtls-operator", str(ROOT / "charts" / "mtls-operator"),
                    "--show-only", "templates/rbac.yaml").stdout  # fmt: skip
    revoker = next(d for d in yaml.safe_load_all(rendered) if d and d["metadata"]["name"].endswith("-revoker"))
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(revoker))
    kubectl.run("create", "rolebinding", "erin", "-n", namespace, f"--clusterrole={revoker['metadata']['name']}",
                "--user=erin")  # fmt: skip

    def revocation(name: str, by: str) -> str:
        body = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsRevocation", "metadata": {"name": name},
                "spec": {"certificateName": "svc", "reason": "superseded", "requestedBy": by}}  # fmt: skip
        return yaml.safe_dump(body)

    proc = kubectl.run("create", "--as", "dave", "-n", namespace, "-f", "-", input=revocation("r1", "dave"),
                       check=False)  # fmt: skip
    assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), proc.stderr

    def impersonation_refused() -> str | None:
        proc = kubectl.run("create", "--as", "erin", "-n", namespace, "-f", "-",
                           input=revocation(f"r-{uuid.uuid4().hex[:4]}", "someone-else"), check=False)  # fmt: skip
        return proc.stderr if proc.returncode != 0 else None

    message = wait_for(impersonation_refused, timeout=30, what="the admission policy holds requestedBy to its creator")
    assert "spec.requestedBy must be the name you are authenticated as (erin)" in message, message
    proc = kubectl.run("create", "--as", "erin", "-n", namespace, "-f", "-", input=revocation("r2", "erin"),
                       check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = published(kubectl, namespace, "r2")
    assert record["spec"]["requestedBy"] == "erin"
    # The partner's side of it: kubectl mtls check fetches the CRL the certificate names and says it is revoked.
    wait_reason(kubectl, namespace, "svc", "Revoked")
    checked = kubectl.plugin("check", "svc", "-n", namespace, check=False)
    assert checked.returncode == 1 and "REVOKED (superseded)" in checked.stdout, checked.stdout
    # A revocation is final: its spec cannot be changed, even by an administrator.
    proc = kubectl.run("patch", "mtlsrevocation", "r2", "-n", namespace, "--type=merge", "-p",
                       '{"spec":{"reason":"unspecified"}}', check=False)  # fmt: skip
    assert proc.returncode != 0 and "a revocation cannot be changed" in proc.stderr, proc.stderr


def test_the_crl_is_signed_again_before_next_update_and_its_number_only_grows(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Short CRL CA")
    first = ready_issuer(kubectl, namespace, "short", ca, operator, lifetime="1m")["status"]["crl"]
    assert first["revokedCertificates"] == 0

    def resigned() -> dict[str, Any] | None:
        crl = ((kubectl.get("mtlsissuer", "short", namespace) or {}).get("status") or {}).get("crl") or {}
        return crl if crl.get("number") != first["number"] else None

    second = wait_for(resigned, timeout=60, interval=1, what="the CRL signed again at half its lifetime")
    assert int(second["number"]) > int(first["number"])
    assert second["nextUpdate"] > first["nextUpdate"]
    assert second["thisUpdate"] < first["nextUpdate"]  # signed well before the first one's nextUpdate
    metrics = operator.metrics()
    labels = f'{{kind="MtlsIssuer",name="short",namespace="{namespace}"}}'
    assert f"mtls_issuer_crl_next_update_timestamp_seconds{labels}" in metrics
    assert f"mtls_issuer_revoked_certificates{labels} 0.0" in metrics


def test_a_revocation_made_while_the_operator_is_down_is_published_when_it_returns(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Restart CA")
    before = ready_issuer(kubectl, namespace, "restart", ca, operator)["status"]["crl"]
    kubectl.apply(certificate_manifest("svc", spec=issued("restart")), namespace)
    serial = wait_ready(kubectl, namespace, "svc")["status"]["issuedBy"]["serialNumber"]
    operator.stop()
    try:
        kubectl.plugin("revoke", "svc", "-n", namespace, "--reason", "superseded", "--timeout", "0")
        # The ConfigMap is lost as well (deleted by someone): the number must still not go back.
        kubectl.run("delete", "configmap", "mtlsissuer-restart-crl", "-n", namespace)
    finally:
        operator.start()
    wait_for(operator.healthy, timeout=30, what="operator back")
    record = published(kubectl, namespace, "svc", timeout=60)
    assert record["status"]["serialNumber"] == serial
    after = (kubectl.get("mtlsissuer", "restart", namespace) or {})["status"]["crl"]
    assert int(after["number"]) > int(before["number"]) and after["revokedCertificates"] == 1
    text = ((kubectl.get("configmap", "mtlsissuer-restart-crl", namespace) or {}).get("data") or {})["ca.crl"]
    assert revocation_in(read_crl(text.encode()), int(serial, 16)) is not None


def test_an_issuer_revokes_what_a_renewal_superseded_and_what_a_deletion_ended(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Tidy CA")
    kubectl.run("create", "secret", "tls", "tidy-ca", "-n", namespace, f"--cert={ca.ca_crt}", f"--key={ca.ca_key}")
    body = yaml.safe_load(issuer("tidy", "tidy-ca", operator, namespace))
    body["spec"]["revocation"] = {"revokeSuperseded": True, "revokeOnDelete": True}
    kubectl.apply(yaml.safe_dump(body), namespace)
    kubectl.apply(certificate_manifest("svc", spec=issued("tidy")), namespace)
    first = wait_ready(kubectl, namespace, "svc")["status"]["issuedBy"]["serialNumber"]
    wait_for(lambda: "mtls.dev/revoke-on-delete" in ((kubectl.get("mtlscertificate", "svc", namespace) or {})
             .get("metadata", {}).get("finalizers") or []), what="the revokeOnDelete finalizer")  # fmt: skip

    kubectl.plugin("renew", "svc", "-n", namespace)
    record = published(kubectl, namespace, f"superseded-{first.lower()}")
    assert record["spec"]["reason"] == "superseded" and record["spec"]["requestedBy"], record
    second = (kubectl.get("mtlscertificate", "svc", namespace) or {})["status"]["issuedBy"]["serialNumber"]
    assert second != first
    assert condition(kubectl.get("mtlscertificate", "svc", namespace))["status"] == "True"  # the new one serves

    kubectl.run("delete", "mtlscertificate", "svc", "-n", namespace, "--wait=false")
    record = published(kubectl, namespace, f"deleted-{second.lower()}")
    assert record["spec"]["reason"] == "cessationOfOperation"
    wait_for(lambda: kubectl.get("mtlscertificate", "svc", namespace) is None, what="the deletion completes")
    text = ((kubectl.get("configmap", "mtlsissuer-tidy-crl", namespace) or {}).get("data") or {})["ca.crl"]
    listed = {r.serial_number for r in read_crl(text.encode())}
    assert listed == {int(first, 16), int(second, 16)}
