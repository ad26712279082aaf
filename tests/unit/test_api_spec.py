from __future__ import annotations

import datetime

import pytest

from mtls_operator.api.spec import parse_duration, parse_spec


@pytest.mark.parametrize(
    ("text", "seconds"), [("8760h", 8760 * 3600), ("1h50m", 6600), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1d", "one year", "h", "10"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def body(**spec):
    base = {"secretName": "s", "commonName": "c.example", "subject": {"country": "IE", "organization": "O"}}
    base.update(spec)
    return {"metadata": {"name": "n", "namespace": "ns", "uid": "u"}, "spec": base}


def test_defaults():
    spec = parse_spec(body())
    assert spec.dns_names == ["c.example"]
    assert str(spec.key) == "RSA-2048" and spec.rotation_policy == "Always"
    assert spec.renew_before == datetime.timedelta(days=30)
    assert spec.signer.kind == "manual" and spec.signer.secret_name == "n-signed"
    assert spec.next_secret_name == "s-next"
    assert parse_spec(body(privateKey={"algorithm": "ECDSA"})).key.size == 256


def test_signers():
    assert parse_spec(body(signer={"ca": {"secretName": "ca"}})).signer.secret_name == "ca"
    assert parse_spec(body(signer={"manual": {"signedSecretName": "x"}})).signer.secret_name == "x"
    with pytest.raises(ValueError, match="exactly one"):
        parse_spec(body(signer={"manual": {}, "ca": {"secretName": "c"}}))


def test_invalid():
    with pytest.raises(ValueError, match="renewBefore must be shorter"):
        parse_spec(body(duration="1h", renewBefore="2h"))
    with pytest.raises(ValueError, match="commonName is required"):
        parse_spec(body(commonName=""))
