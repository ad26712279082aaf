from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from mtls_operator.runtime.metrics import Metrics


def cert(name="a", **status):
    return {
        "metadata": {"namespace": "ns", "name": name},
        "spec": {"commonName": "c.example", "signer": {"ca": {"secretName": "x"}}},
        "status": status,
    }


READY = {
    "notAfter": "2027-01-01T00:00:00Z",
    "notBefore": "2026-01-01T00:00:00Z",
    "renewalTime": "2026-12-01T00:00:00Z",
    "conditions": [{"type": "Ready", "status": "True"}, {"type": "RenewalDue", "status": "False"}],
}


def sample(metrics: Metrics, metric: str, **labels) -> float | None:
    """Reads the scrape the way Prometheus does (the text format), not the objects behind it."""
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if s.name == metric and s.labels == labels:
                return s.value
    return None


def test_gauges_follow_status_and_disappear_with_the_object():
    m = Metrics()
    m.observe(cert(**READY), [("Normal", "Issued", "")])
    labels = {"namespace": "ns", "name": "a", "common_name": "c.example", "signer": "ca"}
    assert sample(m, "mtls_certificate_expiration_timestamp_seconds", **labels) == 1798761600.0
    assert sample(m, "mtls_certificate_ready_status", **labels, condition="True") == 1
    assert sample(m, "mtls_certificate_ready_status", **labels, condition="False") == 0
    assert sample(m, "mtls_certificate_issued_total", **labels) == 1
    assert sample(m, "mtls_certificate_awaiting_signature_since_timestamp_seconds", **labels) is None
    m.observe(cert(**READY), [("Warning", "KeyMismatch", "")])
    assert sample(m, "mtls_certificate_failures_total", **labels, reason="KeyMismatch") == 1
    m.remove("ns", "a")
    assert 'name="a"' not in m.exposition().decode()


def test_awaiting_signature_series_present_only_while_pending():
    m = Metrics()
    labels = {"namespace": "ns", "name": "a", "common_name": "c.example", "signer": "ca"}
    m.observe(cert(csrPublishedTime="2026-01-01T00:00:00Z"), [])
    assert sample(m, "mtls_certificate_awaiting_signature_since_timestamp_seconds", **labels) == 1767225600.0
    m.observe(cert(**READY), [])
    assert sample(m, "mtls_certificate_awaiting_signature_since_timestamp_seconds", **labels) is None


def test_exposition_passes_promtool_and_escapes_labels():
    m = Metrics()
    odd = cert(**READY)
    odd["spec"]["commonName"] = 'we"ird\\name'
    m.observe(odd, [("Warning", "KeyMismatch", "")])
    m.observe(cert("b", csrPublishedTime="2026-01-01T00:00:00Z"), [])
    text = m.exposition().decode()
    assert (
        sample(m, "mtls_certificate_issued_total", namespace="ns", name="a", common_name='we"ird\\name', signer="ca")
        == 0
    )
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "_created" not in text


def test_phase_series_names_only_the_current_phase():
    m = Metrics()
    labels = {"namespace": "ns", "name": "a", "common_name": "c.example", "signer": "ca"}
    m.observe(cert(phase="AwaitingSignature"), [])
    assert sample(m, "mtls_certificate_phase", **labels, phase="AwaitingSignature") == 1
    m.observe(cert(phase="Ready", **READY), [])
    assert sample(m, "mtls_certificate_phase", **labels, phase="Ready") == 1
    assert sample(m, "mtls_certificate_phase", **labels, phase="AwaitingSignature") is None
    m.observe(cert(), [])
    assert sample(m, "mtls_certificate_phase", **labels, phase="Unknown") == 1
