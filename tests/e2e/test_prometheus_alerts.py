"""A real Prometheus server scrapes the running operator and evaluates the shipped alert rules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from harness.cluster import (
    Kubectl,
    OperatorProcess,
    Partner,
    create_and_get_csr,
    http_get,
    put_signed,
    wait_for,
    wait_ready,
)


def alerts(url: str, namespace: str) -> list[dict]:
    body = http_get(f"{url}/api/v1/alerts")
    found = json.loads(body)["data"]["alerts"] if body else []
    return [a for a in found if a["labels"].get("namespace") == namespace]


def wait_firing(url: str, namespace: str, alertname: str) -> list[dict]:
    """The namespace's alerts of that name once at least one is firing (rules are evaluated every few seconds)."""
    return wait_for(
        lambda: [a for a in alerts(url, namespace) if a["labels"]["alertname"] == alertname and a["state"] == "firing"],
        timeout=60,
        what=f"{alertname} firing",
    )


def test_renewal_due_alert_fires_for_a_20_day_certificate_only(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, partner: Partner, prometheus: str
) -> None:
    short_csr = create_and_get_csr(kubectl, namespace, "twenty")
    long_csr = create_and_get_csr(kubectl, namespace, "year")
    put_signed(kubectl, namespace, "twenty-signed", {"tls.crt": partner.sign(short_csr, days=20, out="20.crt")})
    put_signed(kubectl, namespace, "year-signed", {"tls.crt": partner.sign(long_csr, days=365, out="365.crt")})
    wait_ready(kubectl, namespace, "year")
    firing = wait_firing(prometheus, namespace, "MtlsCertificateRenewalDue")
    assert [a["labels"]["name"] for a in firing] == ["twenty"]
    assert firing[0]["labels"]["common_name"] == "client.example.com"
    assert re.search(r"expires in (19\.9|20\.0) days", firing[0]["annotations"]["description"])
    assert not [a for a in alerts(prometheus, namespace) if a["labels"].get("name") == "year"]


def test_issuer_ca_expiring_alert_fires_for_the_45_day_ca_only(
    kubectl: Kubectl, operator: OperatorProcess, namespace: str, prometheus: str, tmp_path: Path
) -> None:
    for name, days in (("soon", 45), ("later", 3650)):
        ca = Partner(tmp_path / name, name=f"{name} CA", ca_days=days)
        kubectl.run(
            "create", "secret", "tls", f"{name}-ca", "-n", namespace, f"--cert={ca.ca_crt}", f"--key={ca.ca_key}"
        )
        issuer = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsIssuer", "metadata": {"name": name},
                  "spec": {"ca": {"secretName": f"{name}-ca"}}}  # fmt: skip
        kubectl.apply(json.dumps(issuer), namespace)
    firing = wait_firing(prometheus, namespace, "MtlsIssuerCAExpiringSoon")
    assert [a["labels"]["name"] for a in firing] == ["soon"]
    assert firing[0]["labels"]["kind"] == "MtlsIssuer"
    assert re.match(r"4[45]\.\d days", firing[0]["annotations"]["description"].split("expires in ")[1])


def test_promtool_check_metrics_on_a_real_scrape(operator: OperatorProcess) -> None:
    scrape = operator.metrics()
    assert "mtls_operator_build_info" in scrape
    proc = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
