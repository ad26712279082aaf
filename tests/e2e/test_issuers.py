"""MtlsIssuer and ClusterMtlsIssuer on the real apiserver with the operator running: status, policy enforced by the
operator (PolicyViolation), RBAC `use` enforced at admission by the chart's ValidatingAdmissionPolicy, and a CA
rotation spread over a window with publishCA carrying old and new CA."""

from __future__ import annotations

import datetime
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from harness.cluster import (
    ADMIN,
    CLUSTER_ISSUER_NAMESPACE,
    Kubectl,
    OperatorProcess,
    Partner,
    allow_certificates,
    certificate_manifest,
    chart_template_applied,
    condition,
    own_control_plane,
    serves_mutating_policies,
    wait_for,
    wait_ready,
    wait_reason,
)

DAY = 2160


@pytest.fixture(scope="module")
def issuer_namespace(kubectl: Kubectl) -> str:
    kubectl.run("create", "namespace", CLUSTER_ISSUER_NAMESPACE, check=False)
    for crd in ("mtlsissuers.mtls.dev", "clustermtlsissuers.mtls.dev"):
        kubectl.run("wait", "--for", "condition=established", "--timeout=60s", f"crd/{crd}")
    return CLUSTER_ISSUER_NAMESPACE


def ca_secret(kubectl: Kubectl, namespace: str, name: str, ca: Partner) -> None:
    """Create or replace (a CA rotation) the CA Secret, as `kubectl create secret tls --dry-run | apply` does."""
    manifest = kubectl.run(
        "create", "secret", "tls", name, "-n", namespace, f"--cert={ca.ca_crt}", f"--key={ca.ca_key}",
        "--dry-run=client", "-o", "yaml",
    ).stdout  # fmt: skip
    kubectl.run("apply", "-f", "-", input=manifest)


def cluster_issuer(name: str, secret: str, policy: dict[str, Any] | None = None, **spec: Any) -> str:
    body = {
        "apiVersion": "mtls.dev/v1alpha1",
        "kind": "ClusterMtlsIssuer",
        "metadata": {"name": name},
        "spec": {"ca": {"secretName": secret}, **({"policy": policy} if policy else {}), **spec},
    }
    return yaml.safe_dump(body)


def issued(name: str, kind: str = "ClusterMtlsIssuer", **spec: Any) -> dict[str, Any]:
    return {"duration": f"{DAY}h", "signer": {"issuerRef": {"kind": kind, "name": name}}, **spec}


def wait_issuer_ready(kubectl: Kubectl, name: str, namespace: str = "") -> dict[str, Any]:
    kind = "mtlsissuer" if namespace else "clustermtlsissuer"
    args = ["-n", namespace] if namespace else []

    def ready() -> dict[str, Any] | None:
        proc = kubectl.run("get", kind, name, *args, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        obj: dict[str, Any] = yaml.safe_load(proc.stdout)
        return obj if condition(obj).get("status") == "True" else None

    return wait_for(ready, timeout=30, what=f"{kind} {name} Ready")


def verify_leaf(kubectl: Kubectl, namespace: str, secret: str, ca: Partner) -> bytes:
    data = kubectl.secret_data(secret, namespace)
    assert data is not None
    leaf = ca.dir / f"{namespace}-{secret}.crt"
    leaf.write_bytes(data["tls.crt"])
    ca.openssl("verify", "-CAfile", str(ca.ca_crt), str(leaf))
    return data["tls.crt"]


def test_cluster_issuer_signs_within_its_policy_and_refuses_what_is_outside(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Platform Internal CA")
    suffix = uuid.uuid4().hex[:6]
    issuer, secret = f"platform-{suffix}", f"platform-ca-{suffix}"
    ca_secret(kubectl, issuer_namespace, secret, ca)
    policy = {
        "namespaceSelector": {"matchLabels": {"mtls.dev/team": "payments"}},
        "allowedCommonNames": ["*.{namespace}.partners.example.com"],
        "allowedSubject": {"organization": ["My Company Inc."], "country": ["IE"]},
        "maxDuration": f"{DAY}h",
    }
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret, policy))
    obj = wait_issuer_ready(kubectl, issuer)
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["ca"]["subject"] == "CN=Platform Internal CA,O=Partner,C=IE"
    fingerprint = ca.openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", str(ca.ca_crt)).decode()
    assert fingerprint.strip().split("=", 1)[1] == status["ca"]["fingerprint"]
    table = kubectl.run("get", "cmtlsissuer", issuer).stdout
    assert table.split()[:5] == ["NAME", "READY", "CA", "EXPIRES", "CERTIFICATES"]
    assert "True" in table.splitlines()[1]
    assert "namespaceSelector" in kubectl.run("explain", "clustermtlsissuer.spec.policy").stdout
    wait_for(
        lambda: issuer_metric(operator, "mtls_issuer_ca_expiration_timestamp_seconds", issuer) > 0,
        what="issuer CA expiry series",
    )

    team = f"t-pay-{suffix}"
    kubectl.run("create", "namespace", team)
    kubectl.run("label", "namespace", team, "mtls.dev/team=payments")
    good = f"api.{team}.partners.example.com"
    kubectl.apply(certificate_manifest("good", common_name=good, spec=issued(issuer)), team)
    ready = wait_ready(kubectl, team, "good")
    verify_leaf(kubectl, team, "good-tls", ca)
    assert ready["status"]["issuer"] == "CN=Platform Internal CA,O=Partner,C=IE"
    # The CA key lives in one place: the team's namespace holds only its own certificate's Secret.
    secrets = kubectl.run("get", "secrets", "-n", team, "-o", "name").stdout.split()
    assert secrets == ["secret/good-tls"]
    assert kubectl.secret_data(secret, team) is None

    # A CN outside the patterns, and a duration above the cap: refused by the operator, nothing signed.
    kubectl.apply(certificate_manifest("evil", common_name="api.other.partners.example.com", spec=issued(issuer)), team)
    obj = wait_reason(kubectl, team, "evil", "PolicyViolation")
    message = condition(obj)["message"]
    assert "policy.allowedCommonNames" in message and "'api.other.partners.example.com'" in message
    assert f"*.{team}.partners.example.com" in message
    assert obj["status"]["phase"] == "Failed"
    assert kubectl.secret_data("evil-tls", team) is None
    warnings = [e for e in kubectl.events(team, "evil") if e["reason"] == "PolicyViolation"]
    assert warnings and warnings[0]["type"] == "Warning"
    long = issued(issuer, duration="8760h")
    kubectl.apply(certificate_manifest("long", common_name=f"long.{team}.partners.example.com", spec=long), team)
    message = condition(wait_reason(kubectl, team, "long", "PolicyViolation"))["message"]
    assert "policy.maxDuration" in message and "8760h" in message and f"{DAY}h" in message

    # A namespace outside the selector is refused; labelled, the same certificate is signed (namespace watch).
    other = f"t-oth-{suffix}"
    kubectl.run("create", "namespace", other)
    cn = f"api.{other}.partners.example.com"
    kubectl.apply(certificate_manifest("outside", common_name=cn, spec=issued(issuer)), other)
    message = condition(wait_reason(kubectl, other, "outside", "PolicyViolation"))["message"]
    assert "policy.namespaceSelector" in message and repr(other) in message
    kubectl.run("label", "namespace", other, "mtls.dev/team=payments")
    wait_ready(kubectl, other, "outside")

    # The policy changes: the certificate in service is reported, not revoked.
    serial = ready["status"]["serialNumber"]
    policy["allowedSubject"] = {"organization": ["Another Company Ltd."]}
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret, policy))
    obj = wait_reason(kubectl, team, "good", "PolicyViolation")
    message = condition(obj)["message"]
    assert "policy.allowedSubject.organization" in message and "'My Company Inc.'" in message
    assert "keeps serving" in message
    assert obj["status"]["serialNumber"] == serial
    assert obj["status"]["phase"] == "Ready"
    verify_leaf(kubectl, team, "good-tls", ca)


def test_partner_csrs_need_the_issuers_consent_and_csr_policy_only_narrows(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Outbound CA")
    partner = Partner(tmp_path / "partner")
    suffix = uuid.uuid4().hex[:6]
    deny, allow, secret = f"no-partners-{suffix}", f"partners-{suffix}", f"outbound-ca-{suffix}"
    ca_secret(kubectl, issuer_namespace, secret, ca)
    kubectl.run("apply", "-f", "-", input=cluster_issuer(deny, secret))
    strict = {"partnerCSRs": "Allow", "keys": {"minRSAKeySize": 3072}}
    kubectl.run("apply", "-f", "-", input=cluster_issuer(allow, secret, strict))
    wait_issuer_ready(kubectl, allow)

    csr2048 = partner.own_csr("/C=IE/O=Partner/CN=partner.example.com").decode()
    kubectl.apply(
        certificate_manifest("refused", common_name="partner.example.com", spec=issued(deny, csr=csr2048)), namespace
    )
    message = condition(wait_reason(kubectl, namespace, "refused", "PolicyViolation"))["message"]
    assert "policy.partnerCSRs" in message

    # csrPolicy asks for 2048 bits where the issuer requires 3072: the issuer's floor holds.
    widen = issued(allow, csr=csr2048, csrPolicy={"minRSAKeySize": 2048})
    kubectl.apply(certificate_manifest("widen", common_name="partner.example.com", spec=widen), namespace)
    message = condition(wait_reason(kubectl, namespace, "widen", "PolicyViolation"))["message"]
    assert "policy.keys" in message and "2048 bits is below the minimum of 3072" in message

    csr3072 = partner.openssl(
        "req",
        "-new",
        "-newkey",
        "rsa:3072",
        "-nodes",
        "-keyout",
        "k3072.key",
        "-subj",
        "/C=IE/O=Partner/CN=p3.example.com",
    ).decode()
    kubectl.apply(
        certificate_manifest("fits", common_name="p3.example.com", spec=issued(allow, csr=csr3072)), namespace
    )
    wait_ready(kubectl, namespace, "fits")
    data = kubectl.secret_data("fits-tls", namespace)
    assert data is not None and "tls.key" not in data  # the partner owns the key
    verify_leaf(kubectl, namespace, "fits-tls", ca)


def test_namespaced_issuer_serves_its_own_namespace_only(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    ca = Partner(tmp_path / "ca", name="Team CA")
    ca_secret(kubectl, namespace, "team-ca", ca)
    issuer = {
        "apiVersion": "mtls.dev/v1alpha1",
        "kind": "MtlsIssuer",
        "metadata": {"name": "team"},
        "spec": {"ca": {"secretName": "team-ca"}, "policy": {"allowedDNSNames": ["*.example.com"]}},
    }
    kubectl.apply(yaml.safe_dump(issuer), namespace)
    wait_issuer_ready(kubectl, "team", namespace)
    kubectl.apply(certificate_manifest("mine", spec=issued("team", kind="MtlsIssuer")), namespace)
    wait_ready(kubectl, namespace, "mine")
    verify_leaf(kubectl, namespace, "mine-tls", ca)
    names = issued("team", kind="MtlsIssuer", dnsNames=["client.example.com", "client.example.org"])
    kubectl.apply(certificate_manifest("names", spec=names), namespace)
    message = condition(wait_reason(kubectl, namespace, "names", "PolicyViolation"))["message"]
    assert "policy.allowedDNSNames" in message and "client.example.org" in message

    elsewhere = f"t-{uuid.uuid4().hex[:10]}"
    kubectl.run("create", "namespace", elsewhere)
    kubectl.apply(certificate_manifest("theirs", spec=issued("team", kind="MtlsIssuer")), elsewhere)
    message = condition(wait_reason(kubectl, elsewhere, "theirs", "IssuerNotFound"))["message"]
    assert f"MtlsIssuer {elsewhere}/team does not exist" in message


@pytest.fixture
def admission_policy(kubectl: Kubectl, tmp_path: Path) -> Iterator[None]:
    """The chart's ValidatingAdmissionPolicy and binding, rendered by helm and applied."""
    with chart_template_applied(kubectl, tmp_path, "admission-policy.yaml"):
        yield


def test_use_of_a_cluster_issuer_is_decided_by_rbac_at_admission(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, namespace: str, tmp_path: Path,
    admission_policy: None,
) -> None:  # fmt: skip
    ca = Partner(tmp_path / "ca", name="Governed CA")
    suffix = uuid.uuid4().hex[:6]
    issuer, secret = f"governed-{suffix}", f"governed-ca-{suffix}"
    ca_secret(kubectl, issuer_namespace, secret, ca)
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret))
    wait_issuer_ready(kubectl, issuer)
    # Both users may create certificates in the namespace; only alice may use the issuer.
    allow_certificates(kubectl, namespace, "alice", "bob")
    # What the chart's README tells a platform team to grant (kubectl create clusterrole refuses custom verbs).
    use_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"use-{issuer}"},
        "rules": [
            {
                "apiGroups": ["mtls.dev"],
                "resources": ["clustermtlsissuers"],
                "verbs": ["use"],
                "resourceNames": [issuer],
            }
        ],
    }
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(use_role))
    kubectl.run("create", "clusterrolebinding", f"use-{issuer}-alice", f"--clusterrole=use-{issuer}", "--user=alice")

    def as_user(user: str, name: str) -> subprocess.CompletedProcess[str]:
        manifest = certificate_manifest(name, spec=issued(issuer), requester=(user, AUTHENTICATED))
        return kubectl.run("apply", "--as", user, "-n", namespace, "-f", "-", input=manifest, check=False)

    # The policy is live once the apiserver has compiled it: bob's first attempts may still pass; retry until not.
    def rejected() -> str | None:
        proc = as_user("bob", f"bob-{uuid.uuid4().hex[:4]}")
        return proc.stderr if proc.returncode != 0 else None

    message = wait_for(rejected, timeout=30, what="the admission policy rejects bob")
    assert f"ClusterMtlsIssuer {issuer} may not be used by bob" in message
    assert f"verb use on clustermtlsissuers/{issuer}" in message
    proc = as_user("alice", "alice-cert")
    assert proc.returncode == 0, proc.stderr
    wait_ready(kubectl, namespace, "alice-cert")
    verify_leaf(kubectl, namespace, "alice-cert-tls", ca)
    # A certificate that names no cluster issuer is none of the policy's business.
    plain = certificate_manifest("bob-manual", requester=("bob", AUTHENTICATED))
    proc = kubectl.run("apply", "--as", "bob", "-n", namespace, "-f", "-", input=plain, check=False)
    assert proc.returncode == 0, proc.stderr
    kubectl.run("delete", "clusterrolebinding", f"use-{issuer}-alice")
    kubectl.run("delete", "clusterrole", f"use-{issuer}")


AUTHENTICATED = ("system:authenticated",)  # the groups of an impersonated user (`--as NAME`)


def use_clusterrole(issuer: str) -> str:
    rule = {"apiGroups": ["mtls.dev"], "resources": ["clustermtlsissuers"], "verbs": ["use"], "resourceNames": [issuer]}
    body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"use-{issuer}"},
            "rules": [rule]}  # fmt: skip
    return yaml.safe_dump(body)


def annotations_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    return ((kubectl.get("mtlscertificate", name, namespace) or {}).get("metadata") or {}).get("annotations") or {}


def test_the_operator_asks_rbac_for_the_recorded_requester_at_every_issuance(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, namespace: str, tmp_path: Path,
    admission_policy: None,
) -> None:  # fmt: skip
    """Who asked is recorded at admission (the chart's MutatingAdmissionPolicy where the cluster serves one; else by
    the user, the ValidatingAdmissionPolicy checking it names them), and the operator checks `use` for that user
    before a cluster issuer signs, at the first issuance and at every renewal: taking `use` away stops the next."""
    recorded_by_admission = serves_mutating_policies(kubectl)
    ca = Partner(tmp_path / "ca", name="Requester CA")
    suffix = uuid.uuid4().hex[:6]
    issuer, secret = f"asked-{suffix}", f"asked-ca-{suffix}"
    ca_secret(kubectl, issuer_namespace, secret, ca)
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret))
    wait_issuer_ready(kubectl, issuer)
    allow_certificates(kubectl, namespace, "carol")
    kubectl.run("apply", "-f", "-", input=use_clusterrole(issuer))
    grant = ("create", "clusterrolebinding", f"use-{issuer}-carol", f"--clusterrole=use-{issuer}", "--user=carol")
    kubectl.run(*grant)
    carol = ("carol", AUTHENTICATED)

    def apply_as_carol(name: str, requester: tuple[str, tuple[str, ...]] | None) -> subprocess.CompletedProcess[str]:
        manifest = certificate_manifest(name, spec=issued(issuer), requester=requester)
        return kubectl.run("apply", "--as", "carol", "-n", namespace, "-f", "-", input=manifest, check=False)

    # A record naming someone else is refused (below MutatingAdmissionPolicy) or overwritten by the truth.
    def judged() -> tuple[str, subprocess.CompletedProcess[str]] | None:
        name = f"forged-{uuid.uuid4().hex[:4]}"
        proc = apply_as_carol(name, ADMIN)
        rewritten = annotations_of(kubectl, namespace, name).get("mtls.dev/requested-by") == "carol"
        if proc.returncode != 0 or (recorded_by_admission and rewritten):
            return name, proc
        return None  # the policies are not live yet

    name, forged = wait_for(judged, timeout=30, what="the admission policies judge the record")
    if recorded_by_admission:
        assert forged.returncode == 0 and annotations_of(kubectl, namespace, name)["mtls.dev/requested-by"] == "carol"
    else:
        assert "may only name the user who writes the spec, carol" in forged.stderr, forged.stderr
    proc = apply_as_carol("carols", None if recorded_by_admission else carol)
    assert proc.returncode == 0, proc.stderr
    first = wait_ready(kubectl, namespace, "carols")["status"]
    recorded = annotations_of(kubectl, namespace, "carols")
    assert recorded["mtls.dev/requested-by"] == "carol"
    assert recorded["mtls.dev/requested-by-groups"] == '["system:authenticated"]'
    # Someone else's metadata-only change (a label, a renew request) does not make them the requester.
    kubectl.run("label", "mtlscertificate", "carols", "-n", namespace, "team=payments")
    assert annotations_of(kubectl, namespace, "carols")["mtls.dev/requested-by"] == "carol"

    # `use` taken away: the next renewal is refused, the certificate in service stays.
    kubectl.run("delete", "clusterrolebinding", f"use-{issuer}-carol")
    time.sleep(3)  # RBAC's answer is remembered 2 s here (--use-review-seconds; 60 s by default)
    kubectl.plugin("renew", "carols", "-n", namespace)
    refused = condition(wait_reason(kubectl, namespace, "carols", "UseNotAllowed", timeout=30))
    assert "carol, recorded as this certificate's requester, does not hold the RBAC verb use" in refused["message"]
    status = (kubectl.get("mtlscertificate", "carols", namespace) or {})["status"]
    assert status["serialNumber"] == first["serialNumber"]  # nothing signed, and nothing taken out of service
    served = x509.load_pem_x509_certificate(kubectl.secret_data("carols-tls", namespace)["tls.crt"])
    assert f"{served.serial_number:X}" == first["serialNumber"].lstrip("0")
    assert "UseNotAllowed" in {e["reason"] for e in kubectl.events(namespace) if e.get("type") == "Warning"}
    # Given back: the renewal that waited goes through.
    kubectl.run(*grant)
    renewed = wait_for(
        lambda: (
            (o := kubectl.get("mtlscertificate", "carols", namespace) or {}).get("status", {}).get("serialNumber")
            not in (None, first["serialNumber"])
            and o
        ),
        timeout=60,
        what="renewed once use is back",
    )
    assert condition(renewed)["reason"] == "Ready"

    # The record removed (metadata only): nobody to ask about, so nothing more is signed by the cluster issuer.
    kubectl.run("annotate", "mtlscertificate", "carols", "-n", namespace,
                "mtls.dev/requested-by-", "mtls.dev/requested-by-groups-")  # fmt: skip
    kubectl.plugin("renew", "carols", "-n", namespace)
    unknown = condition(wait_reason(kubectl, namespace, "carols", "RequesterUnknown", timeout=30))
    assert "nobody is recorded as this certificate's requester" in unknown["message"]

    # An issuer its owner opened to its selected namespaces asks nobody.
    kubectl.run("patch", "clustermtlsissuer", issuer, "--type=merge",
                "-p", '{"spec": {"policy": {"openToSelectedNamespaces": true}}}')  # fmt: skip
    wait_for(lambda: (o := kubectl.get("mtlscertificate", "carols", namespace) or {}) and
             condition(o).get("reason") == "Ready" and o["status"]["serialNumber"] != renewed["status"]["serialNumber"],
             timeout=60, what="signed once the issuer is open")  # fmt: skip
    kubectl.run("delete", "clusterrolebinding", f"use-{issuer}-carol")
    kubectl.run("delete", "clusterrole", f"use-{issuer}")


def test_kubectl_mtls_record_writes_the_users_own_record_where_nothing_else_does(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, namespace: str, tmp_path: Path
) -> None:
    """Without a record a cluster issuer signs nothing; `kubectl mtls record` writes the user's own (a metadata-only
    change, which the validating policy checks names them), and the certificate is signed."""
    ca = Partner(tmp_path / "ca", name="Record CA")
    suffix = uuid.uuid4().hex[:6]
    issuer, secret = f"record-{suffix}", f"record-ca-{suffix}"
    ca_secret(kubectl, issuer_namespace, secret, ca)
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret))
    wait_issuer_ready(kubectl, issuer)
    kubectl.apply(certificate_manifest("unrecorded", spec=issued(issuer)), namespace)
    wait_ready(kubectl, namespace, "unrecorded")
    # The record removed (a change of metadata only: no mutating policy writes it back) and a renewal asked for.
    kubectl.run("annotate", "mtlscertificate", "unrecorded", "-n", namespace,
                "mtls.dev/requested-by-", "mtls.dev/requested-by-groups-")  # fmt: skip
    kubectl.plugin("renew", "unrecorded", "-n", namespace)
    wait_reason(kubectl, namespace, "unrecorded", "RequesterUnknown", timeout=30)
    out = kubectl.plugin("record", "unrecorded", "-n", namespace).stdout
    assert f"{namespace}/unrecorded: recorded as requested by admin" in out, out
    recorded = annotations_of(kubectl, namespace, "unrecorded")
    assert recorded["mtls.dev/requested-by-groups"] == '["system:masters", "system:authenticated"]'
    renewed = wait_reason(kubectl, namespace, "unrecorded", "Ready", timeout=60)
    assert renewed["status"]["lastRenewalRequest"], renewed["status"]
    assert "already recorded" in kubectl.plugin("record", "unrecorded", "-n", namespace).stdout


def test_ca_rotation_reissues_every_certificate_over_the_spread(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, namespace: str, tmp_path: Path
) -> None:
    old_ca = Partner(tmp_path / "old", name="Rotating CA")
    new_ca = Partner(tmp_path / "new", name="Rotating CA")  # same subject, new keypair: what a rotation is
    suffix = uuid.uuid4().hex[:6]
    issuer, secret, spread = f"rotating-{suffix}", f"rotating-ca-{suffix}", 20
    ca_secret(kubectl, issuer_namespace, secret, old_ca)
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret, rotation={"spread": f"{spread}s"}))
    wait_issuer_ready(kubectl, issuer)
    names = [f"c{i}" for i in range(10)]
    for name in names:
        spec = issued(issuer, publishCA={"configMapName": "trust"})
        kubectl.apply(certificate_manifest(name, common_name=f"{name}.example.com", spec=spec), namespace)
    before = {name: wait_ready(kubectl, namespace, name, timeout=60)["status"] for name in names}
    wait_for(lambda: _bundle_count(kubectl, namespace) == 1, what="trust bundle with the old CA")

    ca_secret(kubectl, issuer_namespace, secret, new_ca)
    rotated_at = datetime.datetime.now(datetime.UTC)
    bundle_counts: set[int] = set()
    moved: dict[str, dict[str, Any]] = {}

    def all_moved() -> bool:
        # Clients keep verifying throughout: every certificate in service chains to the published bundle. The
        # reads are not one instant: the bundle read before the Secrets may predate a new CA that a certificate read
        # after it already uses, and the one read after may have dropped an old CA that a certificate read before
        # it still used. What was in service at the Secret's read lies between the two, so one of them must trust it.
        bundles = [_bundle(kubectl, namespace)]
        certificates: dict[str, bytes] = {}
        for name in names:
            # The status first: the operator writes the Secret before the status, so a Secret read after a status
            # that shows the new serial holds the new certificate (read the other way round, it may not).
            status = (kubectl.get("mtlscertificate", name, namespace) or {}).get("status") or {}
            data = kubectl.secret_data(f"{name}-tls", namespace)
            assert data is not None
            certificates[name] = data["tls.crt"]
            if status.get("serialNumber") != before[name]["serialNumber"]:
                moved[name] = status
        bundles.append(_bundle(kubectl, namespace))
        for bundle in bundles:
            bundle_counts.add(bundle.count("BEGIN CERTIFICATE"))
        for name, crt in certificates.items():
            (tmp_path / f"{name}.crt").write_bytes(crt)
            problems = []
            for bundle in bundles:
                (tmp_path / "trust.pem").write_text(bundle)
                try:
                    old_ca.openssl("verify", "-CAfile", str(tmp_path / "trust.pem"), str(tmp_path / f"{name}.crt"))
                    break
                except AssertionError as problem:
                    problems.append(str(problem))
            else:
                raise AssertionError(f"{name} chains to neither bundle read around it: {problems}")
        return len(moved) == len(names)

    wait_for(all_moved, timeout=spread + 40, interval=1.0, what="every certificate re-issued by the new CA")
    for name in names:
        new_ca.openssl("verify", "-CAfile", str(new_ca.ca_crt), str(tmp_path / f"{name}.crt"))
        assert moved[name]["revision"] == before[name]["revision"] + 1, f"{name} re-issued exactly once"
    issued_at = sorted(datetime.datetime.fromisoformat(moved[n]["lastIssuedTime"]) for n in names)
    assert issued_at[-1] - rotated_at <= datetime.timedelta(seconds=spread + 10), "within the spread"
    assert issued_at[-1] - issued_at[0] >= datetime.timedelta(seconds=spread / 4), "spread out, not a storm"
    # publishCA: old and new while certificates moved, then only the new one.
    assert 2 in bundle_counts
    wait_for(lambda: _bundle_count(kubectl, namespace) == 1, what="trust bundle with only the new CA")
    (tmp_path / "trust.pem").write_text(_bundle(kubectl, namespace))
    fingerprint = ("x509", "-noout", "-fingerprint", "-sha256", "-in")
    assert new_ca.openssl(*fingerprint, str(tmp_path / "trust.pem")) == new_ca.openssl(*fingerprint, str(new_ca.ca_crt))
    status = wait_for(
        lambda: (
            (s := _issuer_status(kubectl, issuer)).get("certificatesOnPreviousCA") == 0
            and (s.get("rotation") or {}).get("completedTime")
            and s
        ),
        what="issuer status: rotation completed",
    )
    assert status["certificates"] == 10
    wait_for(
        lambda: (
            issuer_metric(operator, "mtls_issuer_certificates_on_previous_ca", issuer) == 0
            and issuer_metric(operator, "mtls_issuer_certificates", issuer) == 10
        ),
        what="issuer metrics after the rotation",
    )
    time.sleep(3)  # nothing is issued a second time once on the new CA
    for name in names:
        assert (kubectl.get("mtlscertificate", name, namespace) or {})["status"]["revision"] == moved[name]["revision"]


def issuer_metric(operator: OperatorProcess, metric: str, issuer: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in operator.metrics().splitlines()
        if line.startswith(metric + "{") and f'name="{issuer}"' in line
    )


def _bundle(kubectl: Kubectl, namespace: str) -> str:
    proc = kubectl.run("get", "configmap", "trust", "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}", check=False)
    return proc.stdout if proc.returncode == 0 else ""


def _bundle_count(kubectl: Kubectl, namespace: str) -> int:
    return _bundle(kubectl, namespace).count("BEGIN CERTIFICATE")


def _issuer_status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return (kubectl.get("clustermtlsissuer", name, "") or {}).get("status") or {}


def test_a_restart_finds_the_issuers_before_any_certificate_looks_for_them(
    kubectl: Kubectl, operator: OperatorProcess, issuer_namespace: str, tmp_path: Path
) -> None:
    """The operator lists issuers and namespace labels before its first reconcile: after a restart no certificate
    reports its issuer missing or its namespace unselected, not even for a moment."""
    ca = Partner(tmp_path / "ca", name="Restart CA")
    suffix = uuid.uuid4().hex[:6]
    issuer, secret = f"restart-{suffix}", f"restart-ca-{suffix}"
    ca_secret(kubectl, issuer_namespace, secret, ca)
    label = f"r-{suffix}"  # never all digits: a label value must stay a string in YAML
    policy = {"namespaceSelector": {"matchLabels": {"mtls.dev/restart": label}}}
    kubectl.run("apply", "-f", "-", input=cluster_issuer(issuer, secret, policy))
    wait_issuer_ready(kubectl, issuer)
    team = f"t-rst-{suffix}"
    kubectl.run("create", "namespace", team)
    kubectl.run("label", "namespace", team, f"mtls.dev/restart={label}")
    names = [f"r{i}" for i in range(5)]
    for name in names:
        kubectl.apply(certificate_manifest(name, spec=issued(issuer)), team)
    for name in names:
        wait_ready(kubectl, team, name)
    operator.stop()
    operator.start()
    assert "issuers at start:" in operator.logs()
    time.sleep(5)  # every certificate has been reconciled again by now
    for name in names:
        assert condition(kubectl.get("mtlscertificate", name, team))["status"] == "True"
    warnings = [e["reason"] for e in kubectl.events(team) if e["type"] == "Warning"]
    assert warnings == [], warnings


USE_POLICY = "mtls-operator-cluster-issuer-use"  # the chart's (release mtls-operator)


def test_cluster_issuers_sign_only_while_their_use_policy_is_in_force(tmp_path: Path) -> None:
    """The operator cannot tell who created a certificate, so `use` of a cluster issuer is checked at admission;
    an operator told the policy's name signs with cluster issuers only while that policy denies. On a control plane
    of its own: the session's operator (without the flag) would sign the same certificates."""
    with own_control_plane(tmp_path / "plane") as (plane, kubectl):
        for ns in ("mtls-system", "apps"):
            kubectl.run("create", "namespace", ns)
        ca = Partner(tmp_path / "ca", name="Platform CA")
        ca_secret(kubectl, "mtls-system", "platform-ca", ca)
        kubectl.run("apply", "-f", "-", input=cluster_issuer("platform", "platform-ca"))
        (tmp_path / "logs").mkdir()
        args = ["-A", "--cluster-issuer-namespace", "mtls-system", "--cluster-issuer-use-policy", USE_POLICY,
                "--use-policy-check-seconds", "1"]  # fmt: skip
        operator = OperatorProcess(plane.kubeconfig, tmp_path / "logs", args)
        try:
            with chart_template_applied(kubectl, tmp_path, "admission-policy.yaml"):
                operator.start()
                wait_issuer_ready(kubectl, "platform")
                kubectl.apply(certificate_manifest("before", spec=issued("platform")), "apps")
                wait_ready(kubectl, "apps", "before", timeout=60)
                verify_leaf(kubectl, "apps", "before-tls", ca)
                # The binding deleted (someone "fixing" a denial): nothing more is signed by a cluster issuer.
                kubectl.run("delete", "validatingadmissionpolicybinding", USE_POLICY)
                time.sleep(2)  # the operator looks every second here (every 30 s by default)
                kubectl.apply(certificate_manifest("during", spec=issued("platform")), "apps")
                held = condition(wait_reason(kubectl, "apps", "during", "UsePolicyMissing", timeout=30))
                assert f"({USE_POLICY}) has no ValidatingAdmissionPolicyBinding" in held["message"], held
                assert "tls.crt" not in (kubectl.secret_data("during-tls", "apps") or {})  # nothing signed
                warnings = {e["reason"] for e in kubectl.events("apps") if e.get("type") == "Warning"}
                assert "UsePolicyMissing" in warnings, warnings
                # A namespaced issuer is none of this policy's business.
                ca_secret(kubectl, "apps", "team-ca", ca)
                team = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsIssuer", "metadata": {"name": "team"},
                        "spec": {"ca": {"secretName": "team-ca"}}}  # fmt: skip
                kubectl.apply(yaml.safe_dump(team), "apps")
                kubectl.apply(certificate_manifest("own", spec=issued("team", kind="MtlsIssuer")), "apps")
                wait_ready(kubectl, "apps", "own", timeout=60)
            # The policy back (helm upgrade would do this): the certificate that waited is signed, without an edit.
            with chart_template_applied(kubectl, tmp_path, "admission-policy.yaml"):
                wait_ready(kubectl, "apps", "during", timeout=30)
                verify_leaf(kubectl, "apps", "during-tls", ca)
                # A binding that only warns lets anyone through: the same as none.
                kubectl.run("patch", "validatingadmissionpolicybinding", USE_POLICY, "--type=merge",
                            "-p", '{"spec": {"validationActions": ["Warn"]}}')  # fmt: skip
                kubectl.apply(certificate_manifest("warned", spec=issued("platform")), "apps")
                held = condition(wait_reason(kubectl, "apps", "warned", "UsePolicyMissing", timeout=30))
                assert "its binding does not deny (validationActions: Warn)" in held["message"], held
        finally:
            operator.stop()
        assert "Traceback" not in operator.logs()
