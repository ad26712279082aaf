"""No private-key bytes in any status, Event or operator log line: checked once at the end of the e2e session."""

from __future__ import annotations

import base64
import json

from harness.cluster import Kubectl


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


def assert_no_key_material_leaked(kubectl: Kubectl, logs: str) -> int:
    """Fails naming where a key line or a PEM key marker appears; returns how many key lines were looked for."""
    fragments = key_fragments(kubectl)
    statuses = kubectl.run("get", "mtlscertificates", "-A", "-o", "json").stdout
    events = kubectl.run("get", "events", "-A", "-o", "json").stdout
    for where, text in (("status", statuses), ("events", events), ("operator logs", logs)):
        assert "PRIVATE KEY" not in text, f"a PEM private key marker appears in {where}"
        leaked = [f for f in fragments if f in text]
        assert not leaked, f"{len(leaked)} private-key line(s) appear in {where}"
    return len(fragments)
