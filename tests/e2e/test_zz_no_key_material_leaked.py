"""Runs last (file order): no private-key bytes in any status, Event or operator log line of the whole suite."""

from __future__ import annotations

import base64
import json

from support import (
    Kubectl,
    OperatorProcess,
)


def key_fragments(kubectl: Kubectl) -> set[str]:
    """Every 64-character base64 line of every private key the operator stored, in any namespace."""
    secrets = json.loads(
        kubectl.run("get", "secrets", "-A", "-l", "app.kubernetes.io/managed-by=mtls-operator", "-o", "json").stdout
    )
    fragments = set()
    for secret in secrets["items"]:
        pem = base64.b64decode((secret.get("data") or {}).get("tls.key", "")).decode()
        fragments |= {line for line in pem.splitlines() if line and not line.startswith("-----")}
    return fragments


def test_no_private_key_bytes_in_status_events_or_logs(kubectl: Kubectl, operator: OperatorProcess) -> None:
    fragments = key_fragments(kubectl)
    assert len(fragments) > 100, "the suite should have stored many keys by now"
    statuses = kubectl.run("get", "mtlscertificates", "-A", "-o", "json").stdout
    events = kubectl.run("get", "events", "-A", "-o", "json").stdout
    logs = operator.logs()
    assert len(logs) > 0
    for where, text in (("status", statuses), ("events", events), ("operator logs", logs)):
        assert "PRIVATE KEY" not in text, f"a PEM private key marker appears in {where}"
        leaked = [f for f in fragments if f in text]
        assert not leaked, f"{len(leaked)} private-key line(s) appear in {where}"
