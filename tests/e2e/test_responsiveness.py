"""RSA-4096 key generation runs off the event loop: other objects keep being served meanwhile."""

from __future__ import annotations

import datetime

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    condition,
    create_and_get_csr,
    wait_for,
)

RSA_4096 = """
  privateKey:
    algorithm: RSA
    size: 4096
"""
HEAVY = 24  # about 10 s of key generation on 2 cores: a window wide enough to observe in whole seconds


def test_rsa_4096_generation_does_not_stall_other_objects(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner
) -> None:
    csr = create_and_get_csr(kubectl, namespace, "light")
    signed = partner.sign(csr)
    heavy = "\n---\n".join(certificate_manifest(f"heavy-{i}", extra_spec=RSA_4096) for i in range(HEAVY))
    kubectl.apply(heavy, namespace)
    kubectl.run("create", "secret", "generic", "light-signed", "-n", namespace, f"--from-file=tls.crt={signed}")
    health_checks = []
    light = wait_for(
        lambda: (
            health_checks.append(operator.healthy())
            or (
                (o := kubectl.get("mtlscertificate", "light", namespace)) and condition(o).get("status") == "True" and o
            )
        ),
        timeout=60,
        what="light Ready",
    )
    statuses = wait_for(
        lambda: (
            (
                s := [
                    (kubectl.get("mtlscertificate", f"heavy-{i}", namespace) or {}).get("status", {})
                    for i in range(HEAVY)
                ]
            )
            and all(x.get("csr") for x in s)
            and s
        ),
        timeout=120,
        what="all RSA-4096 CSRs",
    )
    assert all(health_checks), "/healthz must answer while keys are generated"
    issued = datetime.datetime.fromisoformat(light["status"]["lastIssuedTime"])
    last_heavy = max(datetime.datetime.fromisoformat(s["csrPublishedTime"]) for s in statuses)
    assert issued < last_heavy, "the import was served while RSA-4096 keys were still being generated"
    (partner.dir / "heavy.csr").write_text(statuses[0]["csr"])
    assert "Public-Key: (4096 bit)" in partner.openssl("req", "-in", "heavy.csr", "-noout", "-text").decode()
