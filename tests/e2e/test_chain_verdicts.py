""" "Ready" means a real server accepts it: 52 partner chains, each judged by real handshakes inside the test.

Each case of `harness.partnerchains` answers the CSR of a real MtlsCertificate. Before the operator sees it, the
test asks two real servers that trust only the partner's root whether they accept our key with everything the
partner sent: `openssl s_server -Verify 5 -verify_return_error` and a Go `tls.RequireAndVerifyClientCert` server.
Nothing here says which case is good: the expected verdict is measured. The operator must agree:

- both servers accept → Ready;
- either refuses → not in service: Ready=False with a named reason and a message naming the certificate, and the
  live Secret still holds no certificate. (Where exactly one stack refuses we refuse too: README "Inbound".)
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from harness import partnerchains
from harness.cluster import (
    Kubectl,
    OperatorProcess,
    certificate_manifest,
    condition,
    put_signed,
    wait_for,
)
from harness.handshakes import Judgement, build_go_server, go_judges, openssl_judges

REFUSALS = {"UntrustedChain", "WrongUsage", "InvalidCertificate", "InvalidChain", "Expired", "NotYetValid"}


@dataclass(frozen=True)
class Measured:
    openssl: Judgement
    go: Judgement
    ready: str  # the Ready condition's status once the operator judged
    reason: str
    message: str
    live_crt: bytes | None  # the live Secret's tls.crt afterwards

    @property
    def servers_accept(self) -> bool:
        return self.openssl.accepted and self.go.accepted


def _name(case: str) -> str:
    return f"c-{case}"[:52]


@pytest.fixture(scope="module")
def measured(
    kubectl: Kubectl, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Measured]:
    """Every case, end to end: certificate, CSR, the partner's answer, two real servers' verdicts, the operator's."""
    namespace = "chain-verdicts"
    kubectl.run("create", "namespace", namespace)
    work = tmp_path_factory.mktemp("chains")
    go_server = build_go_server(work)
    manifests = "\n---\n".join(certificate_manifest(_name(case)) for case in partnerchains.CASES)
    kubectl.apply(manifests, namespace)

    def judge(case: str) -> tuple[Judgement, Judgement]:
        name = _name(case)
        obj = wait_for(
            lambda: (o := kubectl.get("mtlscertificate", name, namespace)) and o.get("status", {}).get("csr") and o,
            timeout=120,
            what=f"{name} CSR",
        )
        csr = x509.load_pem_x509_csr(obj["status"]["csr"].encode())
        directory = work / case
        files = partnerchains.files_for(case, csr, directory)
        key = directory / "tls.key"
        key.write_bytes(kubectl.secret_data(f"{name}-tls", namespace)["tls.key"])
        presented = directory / "presented.pem"
        presented.write_bytes(files.presented(csr.public_key()))
        verdicts = (
            openssl_judges(directory, files.trusted_root, presented, key),
            go_judges(go_server, directory, files.trusted_root, presented, key),
        )
        put_signed(kubectl, namespace, f"{name}-signed", dict(files.as_files()))  # type: ignore[arg-type]
        return verdicts

    # files_for keeps the subject to copy in a module global: build and judge one case at a time.
    judged = {case: judge(case) for case in partnerchains.CASES}

    def outcome(case: str) -> Measured:
        name = _name(case)
        obj = wait_for(
            lambda: (
                (o := kubectl.get("mtlscertificate", name, namespace))
                and condition(o).get("reason") not in (None, "AwaitingSignature")
                and o
            ),
            timeout=120,
            what=f"{name}: a verdict",
        )
        ready = condition(obj)
        live = kubectl.secret_data(f"{name}-tls", namespace) or {}
        return Measured(*judged[case], ready.get("status", ""), ready.get("reason", ""), ready.get("message", ""),
                        live.get("tls.crt") or None)  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return dict(zip(partnerchains.CASES, pool.map(outcome, partnerchains.CASES), strict=True))


def test_the_table_covers_forty_cases_both_ways(measured: dict[str, Measured]) -> None:
    """The catalogue is a real test only if both servers accept some chains and refuse others."""
    assert len(measured) >= 40
    accepted = [c for c, m in measured.items() if m.servers_accept]
    refused_by_both = [c for c, m in measured.items() if not m.openssl.accepted and not m.go.accepted]
    split = [c for c, m in measured.items() if m.openssl.accepted != m.go.accepted]
    assert len(accepted) >= 15 and len(refused_by_both) >= 15, (accepted, refused_by_both)
    assert split, "the catalogue must hold cases where OpenSSL and Go disagree"


@pytest.mark.parametrize("case", list(partnerchains.CASES))
def test_operator_agrees_with_real_servers(measured: dict[str, Measured], case: str) -> None:
    m = measured[case]
    servers = f"openssl: {m.openssl.detail or 'accepts'}; go: {m.go.detail or 'accepts'}"
    if m.servers_accept:
        assert m.ready == "True", f"both servers accept, the operator refused ({m.reason}: {m.message}); {servers}"
        assert m.live_crt is not None
        return
    assert m.ready != "True", f"a real server refuses ({servers}) but the operator put it in service"
    assert m.reason in REFUSALS, m.reason
    assert m.live_crt is None, "a refused upload must not reach the live Secret"
    assert "ask the partner" in m.message or "send the partner" in m.message or m.reason in {"Expired"}, m.message


def test_wrong_messages_of_old_are_gone(measured: dict[str, Measured]) -> None:
    """A SHA-1 or MD5 leaf is not 'not part of the chain'; a SHA-1 intermediate is not 'in neither file'."""
    for case in ("leaf-sha1", "leaf-md5"):
        message = measured[case].message
        assert "not part of the chain" not in message, message
        assert "SHA1" in message or "MD5" in message, message
    message = measured["intermediate-sha1"].message
    assert "in neither tls.crt nor ca.crt" not in message, message
    assert "CN=Partner Issuing CA (number 2 in tls.crt)" in message and "SHA1" in message, message


def test_messages_name_the_certificate_and_the_rule(measured: dict[str, Measured]) -> None:
    expect = {
        "intermediate-expired": ["CN=Partner Issuing CA (number 2 in tls.crt)", "expired at"],
        "root-expired": ["CN=Partner Root CA (number 1 in ca.crt)", "expired at"],
        "intermediate-key-usage-without-keycertsign": ["keyCertSign"],
        "v1-intermediate": ["version 1"],
        "pathlen-exceeded": ["pathLenConstraint"],
        "name-constraints-exclude-us": ["excludes example.com"],
        "root-rsa-1024": ["1024 bits"],
        "leaf-eku-any-only": ["anyExtendedKeyUsage"],
        "intermediate-wrong-authority-key-id": ["authorityKeyIdentifier"],
        "leaf-negative-serial": ["negative"],
    }
    for case, fragments in expect.items():
        for fragment in fragments:
            assert fragment in measured[case].message, (case, measured[case].message)


def test_plugin_import_refuses_locally_what_it_can_judge_without_the_key(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    """`kubectl mtls import` holds only the CSR: it refuses the time and Go rules before uploading; what only
    OpenSSL can judge (it needs the key) the operator refuses after the upload, and the plugin, waiting for that
    verdict, reports it with the operator's message and fails."""
    results = {}
    for case in ("intermediate-expired", "leaf-negative-serial", "root-intermediate-leaf", "root-rsa-1024"):
        name = _name(case)
        kubectl.apply(certificate_manifest(name), namespace)
        csr_pem = wait_for(
            lambda n=name: (kubectl.get("mtlscertificate", n, namespace) or {}).get("status", {}).get("csr"),
            timeout=60, what=f"{name} CSR",
        )  # fmt: skip
        files = partnerchains.files_for(case, x509.load_pem_x509_csr(csr_pem.encode()), tmp_path / case)
        (tmp_path / case / "tls.crt").write_bytes(files.tls_crt)
        (tmp_path / case / "ca.crt").write_bytes(files.ca_crt or b"")
        results[case] = kubectl.plugin("import", name, "-n", namespace, "--cert", str(tmp_path / case / "tls.crt"),
                                       "--ca", str(tmp_path / case / "ca.crt"), check=False)  # fmt: skip
    assert results["intermediate-expired"].returncode != 0
    assert "CN=Partner Issuing CA" in results["intermediate-expired"].stderr
    assert results["leaf-negative-serial"].returncode != 0
    assert "negative" in results["leaf-negative-serial"].stderr
    assert kubectl.get("secret", f"{_name('intermediate-expired')}-signed", namespace) is None
    assert results["root-intermediate-leaf"].returncode == 0, results["root-intermediate-leaf"].stderr
    assert results["root-intermediate-leaf"].stdout.strip().splitlines()[-1].startswith("in service: serial ")
    assert results["root-rsa-1024"].returncode != 0  # uploaded (OpenSSL's verdict needs the key), then refused
    assert "the operator rejected it: UntrustedChain" in results["root-rsa-1024"].stderr
    assert "1024 bits" in results["root-rsa-1024"].stderr
    assert kubectl.get("secret", f"{_name('root-rsa-1024')}-signed", namespace) is not None
    refused = wait_for(
        lambda: (o := kubectl.get("mtlscertificate", _name("root-rsa-1024"), namespace))
        and condition(o).get("reason") == "UntrustedChain" and o,
        timeout=60, what="the operator's refusal",
    )  # fmt: skip
    assert "1024 bits" in condition(refused)["message"]
    wait_for(
        lambda: condition(kubectl.get("mtlscertificate", _name("root-intermediate-leaf"), namespace)).get("status")
        == "True",
        timeout=60, what="Ready",
    )  # fmt: skip


def test_a_bad_chain_at_renewal_never_replaces_the_certificate_in_service(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    name = "renewed"
    kubectl.apply(certificate_manifest(name), namespace)

    def csr_of() -> x509.CertificateSigningRequest:
        pem = wait_for(
            lambda: (kubectl.get("mtlscertificate", name, namespace) or {}).get("status", {}).get("csr"),
            timeout=60, what="CSR",
        )  # fmt: skip
        return x509.load_pem_x509_csr(pem.encode())

    first = partnerchains.files_for("root-intermediate-leaf", csr_of(), tmp_path / "first")
    put_signed(kubectl, namespace, f"{name}-signed", dict(first.as_files()))  # type: ignore[arg-type]
    wait_for(lambda: condition(kubectl.get("mtlscertificate", name, namespace)).get("status") == "True",
             timeout=60, what="Ready")  # fmt: skip
    served = kubectl.secret_data(f"{name}-tls", namespace)
    kubectl.plugin("renew", name, "-n", namespace)
    renewal_csr = wait_for(
        lambda: (c := csr_of()) and c.public_key() != x509.load_pem_x509_certificate(served["tls.crt"]).public_key()
        and c,
        timeout=60, what="the renewal CSR",
    )  # fmt: skip
    bad = partnerchains.files_for("intermediate-key-usage-without-keycertsign", renewal_csr, tmp_path / "bad")
    put_signed(kubectl, namespace, f"{name}-signed", dict(bad.as_files()))  # type: ignore[arg-type]
    obj = wait_for(
        lambda: (o := kubectl.get("mtlscertificate", name, namespace)) and "keyCertSign" in condition(o).get(
            "message", "") and o,
        timeout=60, what="the renewal refused",
    )  # fmt: skip
    assert kubectl.secret_data(f"{name}-tls", namespace) == served, "the working certificate stays in service"
    assert obj["status"].get("csr"), "the pending CSR stays published for a corrected answer"


BAD_OWN_CAS = {
    "rsa-1024": (lambda d: partnerchains.root(kind="rsa1024", slot="own"), "1024 bits"),
    "no-keycertsign": (
        lambda d: partnerchains.intermediate(
            partnerchains.root(), partnerchains.ca_spec(key_usage=partnerchains.CRL_ONLY)
        ),
        "keyCertSign",
    ),
    "v1-intermediate": (lambda d: partnerchains.openssl_v1_intermediate(d, partnerchains.root()), "version 1"),
}


def test_our_ca_signer_refuses_a_ca_servers_would_refuse_and_a_good_one_passes_both_servers(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    """Outbound side: the `ca` signer with each bad CA is Failed (CAInvalid) before any key is generated; with a good
    CA the issued certificate completes a handshake against openssl s_server and a Go server trusting only that CA."""
    for label, (make, _fragment) in BAD_OWN_CAS.items():
        ca = make(tmp_path / label)
        (tmp_path / f"{label}.crt").write_bytes(ca.pem)
        (tmp_path / f"{label}.key").write_bytes(ca.key_pem())
        kubectl.run("create", "secret", "tls", f"ca-{label}", "-n", namespace, f"--cert={tmp_path / f'{label}.crt'}",
                    f"--key={tmp_path / f'{label}.key'}")  # fmt: skip
        kubectl.apply(certificate_manifest(f"own-{label}", spec={"signer": {"ca": {"secretName": f"ca-{label}"}}}),
                      namespace)  # fmt: skip
    for label, (_make, fragment) in BAD_OWN_CAS.items():
        obj = wait_for(
            lambda n=f"own-{label}": (o := kubectl.get("mtlscertificate", n, namespace))
            and condition(o).get("reason") == "CAInvalid" and o,
            timeout=60, what=f"own-{label} CAInvalid",
        )  # fmt: skip
        assert fragment in condition(obj)["message"], condition(obj)["message"]
        assert "servers would refuse every certificate this CA issues" in condition(obj)["message"]
        assert not (kubectl.secret_data(f"own-{label}-tls", namespace) or {}).get("tls.key"), "no key for a bad CA"

    good = partnerchains.root(slot="own-good")
    (tmp_path / "good.crt").write_bytes(good.pem)
    (tmp_path / "good.key").write_bytes(good.key_pem())
    kubectl.run("create", "secret", "tls", "ca-good", "-n", namespace, f"--cert={tmp_path / 'good.crt'}",
                f"--key={tmp_path / 'good.key'}")  # fmt: skip
    kubectl.apply(certificate_manifest("own-good", spec={"signer": {"ca": {"secretName": "ca-good"}}}), namespace)
    wait_for(lambda: condition(kubectl.get("mtlscertificate", "own-good", namespace)).get("status") == "True",
             timeout=60, what="own-good Ready")  # fmt: skip
    live = kubectl.secret_data("own-good-tls", namespace)
    (tmp_path / "issued.crt").write_bytes(live["tls.crt"])
    (tmp_path / "issued.key").write_bytes(live["tls.key"])
    go_server = build_go_server(tmp_path)
    assert openssl_judges(tmp_path / "o", good.pem, tmp_path / "issued.crt", tmp_path / "issued.key").accepted
    assert go_judges(go_server, tmp_path / "g", good.pem, tmp_path / "issued.crt", tmp_path / "issued.key").accepted
