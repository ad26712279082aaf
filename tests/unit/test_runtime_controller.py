"""runtime.controller: what the controller knows before the Secret informer lists (on FakeKube)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kubernetes

from harness.fakekube import FakeKube
from mtls_operator.kube.health import ApiHealth, ApiProbe
from mtls_operator.runtime.controller import Controller
from mtls_operator.runtime.settings import Settings
from mtls_operator.runtime.sharding import Shard, shard_of


class ListingKube(FakeKube):
    """FakeKube with KubeIO.pages for certificates, two to a page (the prime must read past the first)."""

    async def pages(self, plural: str, namespace: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        assert plural == "mtlscertificates"
        items = [body for (ns, _), body in sorted(self.certificates.items()) if namespace in (None, ns)]
        for first in range(0, len(items), 2):
            yield items[first : first + 2]


def certificate(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name}, "spec": {"secretName": f"{name}-tls", **spec}}


def controller(kube: FakeKube, settings: Settings) -> Controller:
    probe = ApiProbe(kubernetes.client.Configuration(), ApiHealth(), None, 1.0)
    return Controller(kube, probe, settings=settings)  # type: ignore[arg-type]


async def test_the_secrets_certificates_name_are_known_before_the_informer_lists() -> None:
    """After a restart the informer lists Secrets while kopf lists certificates: without this, Secrets listed
    first are kept by version alone and each certificate's first reconcile GETs its own (10,000 at 10,000)."""
    kube = ListingKube()
    for i in range(5):
        kube.add_certificate(certificate("team", f"c{i}"))
    kube.add_certificate(certificate("other", "by-ca", signer={"ca": {"secretName": "team-ca"}}))
    ctl = controller(kube, Settings(namespaces=None))
    assert not ctl.secret_wanted("team", "c0-tls")
    await ctl.prime_secret_index()
    for i in range(5):
        assert ctl.secret_wanted("team", f"c{i}-tls")
        assert ctl.secret_wanted("team", f"c{i}-tls-next")  # the key waiting for its certificate
    assert ctl.secret_wanted("other", "team-ca")  # a CA Secret a certificate names
    assert not ctl.secret_wanted("team", "unrelated")
    assert not ctl.secret_wanted("other", "c0-tls")  # names are per namespace


async def test_a_shard_primes_only_its_own_certificates_and_an_api_failure_leaves_it_to_the_watches() -> None:
    kube = ListingKube()
    names = [f"c{i}" for i in range(12)]
    for name in names:
        kube.add_certificate(certificate("team", name))
    ctl = controller(kube, Settings(namespaces=["team"], shard=Shard(1, 2)))
    await ctl.prime_secret_index()
    for name in names:
        assert ctl.secret_wanted("team", f"{name}-tls") == (shard_of("team", name, 2) == 1)

    class Down(ListingKube):
        async def pages(self, plural: str, namespace: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
            raise ConnectionError("the API is away")
            yield []  # pragma: no cover - an async generator

    down = controller(Down(), Settings(namespaces=None))
    await down.prime_secret_index()  # logged, not raised: the watches fill the index soon after
    assert not down.secret_wanted("team", "c0-tls")
