"""The informer's cache rules (no network): which version wins, who may delete, when a read costs a GET.
Its streams against the real apiserver are tested in tests/e2e/test_secret_informer.py."""

from __future__ import annotations

import base64
from typing import Any

from mtls_operator.api.names import CERTIFICATE_LABEL, MANAGED_BY, MANAGER
from mtls_operator.kube.objects import SecretView
from mtls_operator.kube.secretcache import OTHERS, OURS, Change, SecretInformer


def view(name: str, rv: int, *, ours: bool = True, data: bytes = b"x", certificate: str = "c") -> SecretView:
    labels = {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: certificate} if ours else {}
    return SecretView(name, "ns", {"tls.crt": data}, labels, [], str(rv))


class Fetcher:
    def __init__(self, result: SecretView | None) -> None:
        self.result, self.calls = result, 0

    async def __call__(self) -> SecretView | None:
        self.calls += 1
        return self.result


def synced_informer(changed: list[tuple[str, str]] | None = None) -> SecretInformer:
    informer = SecretInformer(
        None, ["ns"], on_change=(lambda ns, n: changed.append((ns, n))) if changed is not None else None
    )  # type: ignore[arg-type]
    informer._replace(OURS, "ns", {}, 0)
    informer._replace(OTHERS, "ns", {}, 0)
    informer.synced.set()
    return informer


async def test_our_secrets_are_served_from_the_cache_without_a_get():
    informer = synced_informer()
    informer._apply(OURS, [Change("put", ("ns", "a"), 5, view("a", 5))])
    fetch = Fetcher(None)
    got = await informer.get("ns", "a", fetch)
    assert got is not None and got.resource_version == "5" and fetch.calls == 0
    assert await informer.get("ns", "missing", fetch) is None and fetch.calls == 0


async def test_others_are_fetched_once_per_resource_version():
    informer = synced_informer()
    informer._apply(OTHERS, [Change("put", ("ns", "signed"), 7)])
    fetch = Fetcher(view("signed", 7, ours=False))
    assert (await informer.get("ns", "signed", fetch)) is not None
    assert (await informer.get("ns", "signed", fetch)) is not None
    assert fetch.calls == 1
    informer._apply(OTHERS, [Change("put", ("ns", "signed"), 9)])  # the user uploaded again
    fetch.result = view("signed", 9, ours=False, data=b"new")
    got = await informer.get("ns", "signed", fetch)
    assert got is not None and got.data["tls.crt"] == b"new" and fetch.calls == 2


async def test_an_echo_or_an_older_event_never_replaces_our_write_and_notifies_nobody():
    changed: list[tuple[str, str]] = []
    informer = synced_informer(changed)
    informer.written(view("a", 10, data=b"written"))
    informer._apply(OURS, [Change("put", ("ns", "a"), 8, view("a", 8, data=b"old"))])
    informer._apply(OURS, [Change("put", ("ns", "a"), 10, view("a", 10, data=b"echo"))])
    got = await informer.get("ns", "a", Fetcher(None))
    assert got is not None and got.data["tls.crt"] == b"written"
    assert changed == []
    informer._apply(OURS, [Change("put", ("ns", "a"), 11, view("a", 11, data=b"someone else"))])
    assert changed == [("ns", "a")]


async def test_a_delete_from_the_other_stream_does_not_remove_a_relabelled_secret():
    informer = synced_informer()
    # The label was removed: `others` reports it before `ours` reports it gone.
    informer._apply(OURS, [Change("put", ("ns", "s"), 3, view("s", 3))])
    informer._apply(OTHERS, [Change("put", ("ns", "s"), 4)])
    informer._apply(OURS, [Change("delete", ("ns", "s"), 4)])
    assert ("ns", "s") in informer.entries and informer.entries[("ns", "s")].source == OTHERS


async def test_a_relist_removes_what_was_deleted_while_not_watching_but_keeps_newer_writes():
    changed: list[tuple[str, str]] = []
    informer = synced_informer(changed)
    informer._apply(
        OURS, [Change("put", ("ns", "gone"), 3, view("gone", 3)), Change("put", ("ns", "kept"), 4, view("kept", 4))]
    )
    informer.written(view("new", 20))  # created after the list's snapshot
    changed.clear()
    informer._replace(OURS, "ns", {("ns", "kept"): Change("put", ("ns", "kept"), 4, view("kept", 4))}, 10)
    assert set(informer.entries) == {("ns", "kept"), ("ns", "new")}
    assert changed == [("ns", "gone")]


async def test_after_a_conflict_the_next_read_is_a_get():
    informer = synced_informer()
    informer._apply(OURS, [Change("put", ("ns", "a"), 5, view("a", 5))])
    informer.conflicted("ns", "a")
    fetch = Fetcher(view("a", 6, data=b"fresh"))
    got = await informer.get("ns", "a", fetch)
    assert got is not None and got.data["tls.crt"] == b"fresh" and fetch.calls == 1
    assert (await informer.get("ns", "a", fetch)) == got and fetch.calls == 1  # from the cache: no second GET
    informer.conflicted("ns", "b")  # a create that found it existing: the cache had not seen it yet
    fetch.result = view("b", 7)
    assert (await informer.get("ns", "b", fetch)) is not None and fetch.calls == 2


async def test_only_secrets_a_certificate_of_this_shard_names_are_kept_whole_whatever_their_labels_say():
    named = {("ns", "a")}
    informer = SecretInformer(None, None, wanted=lambda ns, name: (ns, name) in named)  # type: ignore[arg-type]

    def labelled(name: str, size: int, certificate: str = "mine") -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": "3",
                             "labels": {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: certificate}},
                "data": {"tls.crt": base64.b64encode(b"x" * size).decode()}}  # fmt: skip

    assert informer._change(OURS, "put", labelled("a", 10)).view is not None  # named by a certificate
    # Not named (yet): a small one is kept until the sweep (a restart lists Secrets before certificates) ...
    assert informer._change(OURS, "put", labelled("b", 10)).view is not None
    # ... a big one never, whatever label it carries (anyone may set the labels)
    assert informer._change(OURS, "put", labelled("junk", 1024 * 1024)).view is None
    # ... and small ones only within the budget.
    informer.unknown_budget = 15
    assert informer._change(OURS, "put", labelled("c", 10)).view is not None
    assert informer._change(OURS, "put", labelled("d", 10)).view is None
    assert (
        informer._change(OTHERS, "put", {"metadata": {"name": "u", "namespace": "ns", "resourceVersion": "5"}}).view
        is None
    )
    # The sweep drops what nobody named, and the budget starts again.
    informer.synced.set()
    informer.unknown_budget = 1000
    informer._apply(OURS, [informer._change(OURS, "put", labelled(n, 10)) for n in ("a", "b")])
    assert informer.sweep() == 1
    assert informer.entries[("ns", "a")].packed is not None and informer.entries[("ns", "b")].packed is None
    assert informer.unknown_budget > 1024 * 1024


def test_a_cached_secret_is_one_bytes_object_that_reads_back_whole() -> None:
    def listed(name: str) -> dict[str, Any]:
        data = {"tls.crt": b"crt " + name.encode(), "tls.key": b"key", "ca.crt": b"the CA " * 100}
        labels = {MANAGED_BY: MANAGER, CERTIFICATE_LABEL: name}
        return {
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "3", "labels": labels},
            "type": "kubernetes.io/tls",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }

    informer = synced_informer()
    informer._apply(OURS, [informer._change(OURS, "put", listed(n)) for n in ("a", "b")])
    a, b = informer.entries[("ns", "a")], informer.entries[("ns", "b")]
    assert isinstance(a.packed, bytes) and len(a.packed) < 700  # the CA's 700 bytes are kept once, not per Secret
    view_a, view_b = a.view, b.view
    assert view_a is not None and view_b is not None
    assert view_a.data == {"tls.crt": b"crt a", "tls.key": b"key", "ca.crt": b"the CA " * 100}
    assert view_a.data["ca.crt"] is view_b.data["ca.crt"]
    assert view_a.labels[CERTIFICATE_LABEL] == "a" and view_a.resource_version == "3"
