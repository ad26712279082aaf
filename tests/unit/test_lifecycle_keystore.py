"""lifecycle.keystore against FakeKube: where a pending key is stored, that it is reused, and that a Secret we did
not write is never read or overwritten."""

from __future__ import annotations

import pytest

from harness.fakekube import FakeKube
from harness.lifecycle import NAMESPACE, START, certificate_body
from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.names import TLS_SECRET
from mtls_operator.api.spec import parse_spec
from mtls_operator.lifecycle.attempt import Attempt
from mtls_operator.lifecycle.keystore import KeyStore, SecretInTheWay
from mtls_operator.lifecycle.policy.keymanager import LIVE, NEXT


def attempt(kube: FakeKube, body: dict) -> Attempt:
    spec = parse_spec(body)
    live = kube.secrets.get((NAMESPACE, spec.secret_name))
    return Attempt(body=body, spec=spec, status={}, live=live, now=START)


@pytest.fixture
def store() -> tuple[FakeKube, KeyStore, list[int]]:
    kube, generated = FakeKube(), []
    return kube, KeyStore(kube, CpuPool(1), lambda: generated.append(1)), generated  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("has_certificate", "location", "secret"),
    [(False, LIVE, "client-tls"), (True, NEXT, "client-tls-next")],
    ids=["first-issuance-in-the-live-secret", "renewal-in-the-next-secret"],
)
async def test_a_persisted_key_is_stored_where_its_certificate_will_go_and_then_reused(
    store, has_certificate, location, secret
):
    kube, keys, generated = store
    body = certificate_body()
    if has_certificate:
        kube.put_secret(NAMESPACE, "client-tls", {"tls.key": b"", "tls.crt": b""}, secret_type=TLS_SECRET)
    first = await keys.pending_key(attempt(kube, body), has_certificate, persist=True)
    assert first.location == location and kube.secrets[(NAMESPACE, secret)].data["tls.key"] == first.pem
    again = await keys.pending_key(attempt(kube, body), has_certificate, persist=True)
    assert again.pem == first.pem and len(generated) == 1


async def test_an_automatic_signers_key_is_not_written_before_its_certificate(store):
    kube, keys, generated = store
    pending = await keys.pending_key(attempt(kube, certificate_body()), False, persist=False)
    assert not pending.stored and kube.secrets == {} and len(generated) == 1


async def test_a_foreign_next_secret_is_never_read_and_never_overwritten(store):
    """And no key is generated for it: the refusal comes before the work (it used to be a key per attempt)."""
    kube, keys, generated = store
    kube.put_secret(NAMESPACE, "client-tls", {"tls.key": b"", "tls.crt": b""}, secret_type=TLS_SECRET)
    theirs = kube.put_secret(NAMESPACE, "client-tls-next", {"tls.key": b"their key"})
    with pytest.raises(SecretInTheWay, match="client-tls-next exists and is not managed by this MtlsCertificate"):
        await keys.pending_key(attempt(kube, certificate_body()), True, persist=True)
    assert kube.secrets[(NAMESPACE, "client-tls-next")] == theirs
    assert generated == []
