"""`make bench-hsm`: certificates signed per second with the CA key in a PKCS#11 token (SoftHSM2) next to the
same signing with the CA key in memory. No cluster: this is the signing step alone (sign_csr), the part of an
issuance the token changes. Writes bench/results/hsm.{json,md}.

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
from harness.pki import make_ca
from harness.softhsm import SoftHSM, find_module
from mtls_operator.api.spec import Subject
from mtls_operator.hsm.token import TokenKeyRef, TokenKeys
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
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
        token_ca = CertificateAuthority(
            cert, keys.signing_key(TokenKeyRef(module, token_label="bench", key_label="ca"), b"1234", cert.public_key())
        )
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
    RESULTS.mkdir(exist_ok=True)
    meta = {"cores": os.cpu_count(), "python": platform.python_version(), "count": args.count}
    (RESULTS / "hsm.json").write_text(json.dumps({"machine": meta, "certificates_per_second": results}, indent=2))
    lines = [
        "| signing (sign_csr, RSA-2048 CA, SHA-256) | certificates/s min | median | max |",
        "|---|---|---|---|",
        *(f"| {k} | {v['min']:.0f} | {v['median']:.0f} | {v['max']:.0f} |" for k, v in results.items()),
        "",
        f"{meta['cores']} cores, Python {meta['python']}, {args.count} certificates per round, {args.rounds} rounds.",
    ]
    (RESULTS / "hsm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
