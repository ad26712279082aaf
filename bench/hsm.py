"""`make bench-hsm`: certificates signed per second with the CA key in a PKCS#11 token (SoftHSM2) next to the
same signing with the CA key in memory, twice: the signing step alone (sign_csr, no cluster: the part of an
issuance the token changes), and through the operator (a real control plane; partners' CSRs signed by an MtlsIssuer
whose key is in the token, next to one whose key is in a Secret: no key generation, so signing and the API are all
there is). Writes bench/results/hsm.{json,md}.

SoftHSM2 is software: a network HSM adds a round trip per signature (often 1-10 ms) and has its own rate limit,
so measure a real one before relying on these numbers. Signatures through one library are serialised (one session,
hsm.token), so a second thread adds nothing here.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "controlplane"))
import yaml

import controlplane
from harness.cluster import DEFAULT_ARGS, Kubectl, OperatorProcess, Partner, certificate_manifest, wait_for
from harness.pki import make_ca
from harness.softhsm import SoftHSM, find_module
from mtls_operator.api.spec import Subject
from mtls_operator.hsm.token import TokenKeyRef, TokenKeys, TokenUser
from mtls_operator.pki.csr import build_csr
from mtls_operator.pki.signing import CertificateAuthority, sign_csr

RESULTS = Path(__file__).resolve().parent / "results"


def _csrs(count: int) -> list[x509.CertificateSigningRequest]:
    key = rsa.generate_private_key(65537, 2048)  # one key: the benchmark measures signing, not key generation
    subject = Subject(common_name="client.bench.example", country="US", organization="Bench")
    csr = x509.load_pem_x509_csr(build_csr(key, subject, ["client.bench.example"]))
    return [csr] * count


def _rate(ca: CertificateAuthority, csrs: list[x509.CertificateSigningRequest], threads: int) -> float:
    now = datetime.datetime.now(datetime.UTC)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda c: sign_csr(c, ca, datetime.timedelta(days=30), now), csrs))
    return len(csrs) / (time.perf_counter() - start)


PIN = "1234"
NAMESPACE = "bench"
CN = "partner.bench.example"


def _issuer(name: str, ca: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "mtls.dev/v1alpha1",
        "kind": "MtlsIssuer",
        "metadata": {"name": name},
        "spec": {"ca": ca, "policy": {"partnerCSRs": "Allow"}},
    }


def through_operator(module: str, count: int) -> dict[str, dict[str, float]]:
    """Seconds from `kubectl apply` of `count` outbound certificates to all Ready, per issuer."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hsm = SoftHSM.create(root / "softhsm", module)
        hsm.init_token("bench", PIN)
        hsm.make_ca("bench", PIN, "ca", root / "token-ca.crt")
        plane = controlplane.start(root / "cluster")
        (root / "logs").mkdir()
        args = [*DEFAULT_ARGS[:1], "--pkcs11-module", module, "--pkcs11-namespaced-token", f"bench={NAMESPACE}"]
        operator = OperatorProcess(plane.kubeconfig, root / "logs", args, env={"SOFTHSM2_CONF": str(hsm.conf)})
        try:
            kubectl = Kubectl(plane.kubeconfig)
            kubectl.run("apply", "-f", str(Path(__file__).resolve().parent.parent / "manifests" / "crd"))
            for crd in ("mtlscertificates", "mtlsissuers"):
                kubectl.run("wait", "--for", "condition=established", "--timeout=60s", f"crd/{crd}.mtls.dev")
            kubectl.run("create", "namespace", NAMESPACE)
            ns = ["-n", NAMESPACE]
            kubectl.run("create", "configmap", "token-ca", *ns, f"--from-file=ca.crt={root / 'token-ca.crt'}")
            kubectl.run("create", "secret", "generic", "pin", *ns, f"--from-literal=pin={PIN}")
            secret_ca = Partner(root / "secret-ca", name="Bench Secret CA")
            kubectl.run(
                "create", "secret", "tls", "secret-ca", *ns, f"--cert={secret_ca.ca_crt}", f"--key={secret_ca.ca_key}"
            )
            token = {"module": module, "tokenLabel": "bench", "keyLabel": "ca", "pinSecretRef": {"name": "pin"}}
            issuers: dict[str, dict[str, object]] = {
                "in-token": {"pkcs11": token, "certificate": {"configMapName": "token-ca"}},
                "in-secret": {"secretName": "secret-ca"},
            }
            kubectl.run(
                "apply", *ns, "-f", "-", input=yaml.safe_dump_all([_issuer(n, ca) for n, ca in issuers.items()])
            )
            operator.start()
            for name in issuers:
                kubectl.run("wait", *ns, "--for", "condition=Ready", "--timeout=60s", f"mtlsissuer/{name}")
            csr = Partner(root / "partner").own_csr(f"/C=IE/O=Partner/CN={CN}").decode()
            results: dict[str, dict[str, float]] = {}
            for name in issuers:
                spec = {"duration": "2160h", "signer": {"issuerRef": {"kind": "MtlsIssuer", "name": name}}, "csr": csr}
                manifests = "\n---\n".join(
                    certificate_manifest(f"{name}-{i}", common_name=CN, spec=spec) for i in range(count)
                )
                start = time.perf_counter()
                kubectl.run("apply", *ns, "-f", "-", input=manifests)

                def all_ready(prefix: str = f"{name}-") -> bool:
                    items = json.loads(kubectl.run("get", "mtlscertificates", *ns, "-o", "json").stdout)["items"]
                    ready = [
                        i
                        for i in items
                        if i["metadata"]["name"].startswith(prefix)
                        and any(
                            c["type"] == "Ready" and c["status"] == "True"
                            for c in i.get("status", {}).get("conditions", [])
                        )
                    ]
                    return len(ready) == count

                wait_for(all_ready, timeout=1800, interval=1.0, what=f"{count} certificates of {name} Ready")
                seconds = time.perf_counter() - start
                results[f"MtlsIssuer, CA key {name.replace('-', ' ')}"] = {
                    "seconds": seconds,
                    "per_second": count / seconds,
                }
                print(f"{name}: {count} certificates Ready in {seconds:.1f} s", flush=True)
            return results
        finally:
            operator.stop()
            controlplane.stop(plane.directory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--operator-count", type=int, default=300, help="certificates per issuer through the operator")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke test (CI)")
    args = parser.parse_args()
    if args.quick:
        args.count, args.rounds, args.operator_count = 200, 1, 20
    module = find_module()
    if module is None:
        print("SoftHSM2 is not installed (make deps)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        hsm = SoftHSM.create(Path(tmp), module)
        os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
        hsm.init_token("bench", "1234")
        cert = x509.load_pem_x509_certificate(hsm.make_ca("bench", "1234", "ca", Path(tmp) / "ca.crt"))
        keys = TokenKeys((module,))
        ref, user = TokenKeyRef(module, token_label="bench", key_label="ca"), TokenUser("ClusterMtlsIssuer bench", None)
        token_ca = CertificateAuthority(cert, keys.signing_key(ref, b"1234", cert.public_key(), user))
        memory_cert, memory_key = make_ca("Bench CA")
        memory_ca = CertificateAuthority(memory_cert, memory_key)
        csrs = _csrs(args.count)
        results: dict[str, dict[str, float]] = {}
        for name, ca in (("in-memory RSA-2048", memory_ca), ("SoftHSM2 RSA-2048", token_ca)):
            for threads in (1, 2):
                rates = [_rate(ca, csrs, threads) for _ in range(args.rounds)]
                results[f"{name}, {threads} thread(s)"] = {
                    "min": min(rates),
                    "median": statistics.median(rates),
                    "max": max(rates),
                }
        keys.close()
    operator = through_operator(module, args.operator_count)
    meta = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "count": args.count,
        "operator_count": args.operator_count,
    }
    lines = [
        "| signing (sign_csr, RSA-2048 CA, SHA-256) | certificates/s min | median | max |",
        "|---|---|---|---|",
        *(f"| {k} | {v['min']:.0f} | {v['median']:.0f} | {v['max']:.0f} |" for k, v in results.items()),
        "",
        f"{meta['cores']} cores, Python {meta['python']}, {args.count} certificates per round, {args.rounds} rounds.",
        "",
        "| through the operator (partners' CSRs, apply to all Ready) | seconds | certificates/s |",
        "|---|---|---|",
        *(f"| {k} | {v['seconds']:.1f} | {v['per_second']:.1f} |" for k, v in operator.items()),
        "",
        f"{args.operator_count} certificates per issuer, one operator, a local control plane on the same cores.",
    ]
    print("\n".join(lines))
    if args.quick:
        return 0  # a smoke test: the numbers of small counts are not results
    RESULTS.mkdir(exist_ok=True)
    document = {"machine": meta, "certificates_per_second": results, "through_the_operator": operator}
    (RESULTS / "hsm.json").write_text(json.dumps(document, indent=2))
    (RESULTS / "hsm.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
