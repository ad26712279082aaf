"""The end-of-session leak check can fail: it finds a stored key's line in an Event, a status or a log."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.leaks import assert_no_key_material_leaked


class RecordedKubectl:
    """Answers the three reads the check makes with fixed documents."""

    def __init__(self, key_pem: bytes, events: str) -> None:
        secret = {"data": {"tls.key": base64.b64encode(key_pem).decode()}}
        self.answers = {"secrets": json.dumps({"items": [secret]}), "mtlscertificates": "{}", "events": events}

    def run(self, verb: str, kind: str, *_: str) -> SimpleNamespace:
        return SimpleNamespace(stdout=self.answers[kind])


def pem() -> bytes:
    key = rsa.generate_private_key(65537, 2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_a_key_line_in_an_event_fails_the_check() -> None:
    key = pem()
    line = key.decode().splitlines()[3]
    with pytest.raises(AssertionError, match="private-key line"):
        assert_no_key_material_leaked(RecordedKubectl(key, json.dumps({"message": f"oops {line}"})), "")  # type: ignore[arg-type]


def test_clean_outputs_pass_and_every_key_line_was_looked_for() -> None:
    assert assert_no_key_material_leaked(RecordedKubectl(pem(), "{}"), "a log line") > 20  # type: ignore[arg-type]
