"""Our own Secret informer: what the reconciles read instead of GETting Secrets.

kopf lists and watches a resource without a server-side selector, unpaginated, full objects: every Secret in
scope, data included, parsed on every (re)start. This informer runs two streams per scope instead:

- **ours** (`app.kubernetes.io/managed-by=mtls-operator`): full objects, paginated list + watch, kept decoded in
  memory only when a certificate of this shard (or an issuer) names the Secret — by its name, not by a label
  anyone can set; the rest as a resourceVersion only. Until the certificates are known (a restart lists Secrets
  and certificates at once), a Secret nobody named yet is kept whole only if it is small (UNKNOWN_ENTRY_BYTES) and
  within a budget (UNKNOWN_BUDGET_BYTES); `sweep()` drops the data of whatever is still not named. A namespace
  full of labelled 1 MiB Secrets costs their names, not their bytes.
- **others** (`...managed-by!=mtls-operator`, which also matches Secrets without the label): metadata only
  (PartialObjectMetadata), so an unrelated Secret costs a name and a resourceVersion. A Secret a certificate
  references (the partner's signed certificate, a CA) is fetched by GET on first read and again only when its
  resourceVersion moved.

Streams run in threads (blocking HTTP, JSON parsed there); every change to the cache is applied on the event loop,
so the loop never parses a list page and nothing is mutated from two threads. A watch resumes from the last
resourceVersion seen (bookmarks keep it fresh); `410 Gone` or an expired continue token means a fresh list.

Over 300 lines on purpose: the list/watch/relist state machine of both streams is one thing, and its
invariants (resourceVersion order, 410 Gone, stale entries after a conflict) are easier to check in one place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from mtls_operator.api.names import MANAGED_BY, MANAGER
from mtls_operator.kube.health import is_outage
from mtls_operator.kube.objects import SecretView, secret_from_json
from mtls_operator.kube.secretcodec import pack_view, unpack_view

log = logging.getLogger(__name__)

OURS, OTHERS, WRITTEN = "ours", "others", "written"
PAGE_SIZE = 500  # runtime.settings.SecretCacheSettings says why
WATCH_SECONDS = 300  # server-side watch timeout; the client waits a little longer before calling it dead
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
METADATA_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

SecretKey = tuple[str, str]  # (namespace, name)
# A labelled Secret no certificate names (yet) is kept whole only below this size and within this total, until the
# next sweep: ours are a few KB (key, chain, CA), so a restart keeps them all without a GET each, and labelled junk
# cannot grow the heap by more than the budget.
UNKNOWN_ENTRY_BYTES = 64 * 1024
UNKNOWN_BUDGET_BYTES = 16 * 1024 * 1024


class Gone(Exception):
    """410: the resourceVersion (or the continue token) is too old; list again."""


def version(rv: str | None) -> int:
    """resourceVersions are opaque by contract but etcd revisions in practice; ordering needs the number."""
    try:
        return int(rv or 0)
    except ValueError:
        return 0


@dataclass(slots=True)
class Entry:
    source: str  # the stream (or our own write) that told us about it; only that stream may delete it
    rv: int
    packed: bytes | None  # the SecretView of version `rv`, pickled; None: known by resourceVersion only (GET it)

    @classmethod
    def of(cls, source: str, rv: int, view: SecretView | None) -> Entry:
        # One bytes object per cached Secret instead of a dozen small ones (dicts, strings, bytes): small objects
        # kept for good among the garbage of every reconcile pin the allocator's pools. Unpacking is a few
        # microseconds, once per read.
        return cls(source, rv, None if view is None else pack_view(view))

    @property
    def view(self) -> SecretView | None:
        return None if self.packed is None else unpack_view(self.packed)


@dataclass(frozen=True)
class Change:
    kind: str  # "put" | "delete"
    key: SecretKey
    rv: int
    view: SecretView | None = None


class SecretInformer:
    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        namespaces: list[str] | None,
        *,
        wanted: Callable[[str, str], bool] | None = None,
        on_change: Callable[[str, str], None] | None = None,
        on_relist: Callable[[], None] | None = None,
        page_size: int = PAGE_SIZE,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        """`namespaces` None: cluster-wide. `wanted(namespace, name)`: a certificate of this shard or an issuer names
        that Secret (None: every labelled Secret is kept whole)."""
        self.api_client = api_client
        self.scopes: list[str | None] = list(namespaces) if namespaces else [None]
        self.wanted = wanted
        self.unknown_budget = UNKNOWN_BUDGET_BYTES  # bytes left for Secrets kept before anyone named them
        self.on_change = on_change
        self.on_relist = on_relist
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.entries: dict[SecretKey, Entry] = {}
        self.changes = 0  # watch events and listed objects applied (memory.settle_heap runs after a wave)
        self.stale: set[SecretKey] = set()  # a write conflicted: read by GET before trusting the cache again
        self.synced = asyncio.Event()
        self._pending_lists = 2 * len(self.scopes)
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(
        self,
        on_change: Callable[[str, str], None] | None = None,
        on_relist: Callable[[], None] | None = None,
        wanted: Callable[[str, str], bool] | None = None,
    ) -> None:
        """Starts the streams; `on_change`/`on_relist`/`wanted` (when given) are who hears of them and who decides
        from now on. Given here, not at construction, because the client is built with this cache and the
        controller with that client."""
        self.on_change = on_change or self.on_change
        self.on_relist = on_relist or self.on_relist
        self.wanted = wanted or self.wanted
        self._loop = asyncio.get_running_loop()
        for scope in self.scopes:
            for stream in (OURS, OTHERS):
                thread = threading.Thread(
                    target=self._run_stream,
                    args=(stream, scope),
                    name=f"secrets-{stream}-{scope or 'all'}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def stop(self) -> None:
        """The threads notice within one watch read; they are daemons, so exit never waits for them."""
        self._stop.set()

    # --- what the reconciles call ------------------------------------------------------------------------------

    async def get(
        self, namespace: str, name: str, fetch: Callable[[], Awaitable[SecretView | None]]
    ) -> SecretView | None:
        """The Secret as the cache knows it; one GET only for a Secret known by version alone, a stale one, or one
        whose fetched copy is older than the version the watch reported."""
        await self.synced.wait()
        key = (namespace, name)
        entry = self.entries.get(key)
        if key not in self.stale:
            if entry is None:
                return None
            if entry.packed is not None:
                return entry.view  # a fresh copy: nobody can change the cache through it
        view = await fetch()
        self.stale.discard(key)
        if view is None:
            current = self.entries.get(key)
            if current is not None and (entry is None or current.rv <= entry.rv):
                del self.entries[key]
            return None
        self.written(view)
        return view

    def counts(self) -> dict[str, int]:
        whole = sum(1 for e in self.entries.values() if e.packed is not None)
        return {"object": whole, "version": len(self.entries) - whole}

    def written(self, view: SecretView) -> None:
        """What our own create/patch/GET returned: newer than (or equal to) anything a watch has shown us."""
        key = (view.namespace, view.name)
        rv = version(view.resource_version)
        entry = self.entries.get(key)
        if entry is not None and entry.rv > rv:
            return
        source = entry.source if entry is not None else (OURS if view.labels.get(MANAGED_BY) == MANAGER else WRITTEN)
        self.entries[key] = Entry.of(source, rv, view)

    def deleted(self, namespace: str, name: str) -> None:
        self.entries.pop((namespace, name), None)
        self.stale.discard((namespace, name))

    def conflicted(self, namespace: str, name: str) -> None:
        self.stale.add((namespace, name))

    # --- applying changes (on the loop) ------------------------------------------------------------------------

    def _apply(self, stream: str, changes: list[Change]) -> None:
        self.changes += len(changes)
        for change in changes:
            entry = self.entries.get(change.key)
            if change.kind == "delete":
                if entry is not None and entry.source in (stream, WRITTEN) and entry.rv <= change.rv:
                    del self.entries[change.key]
                    self._notify(change.key)
                continue
            if entry is not None and entry.rv >= change.rv:
                if entry.source == WRITTEN:
                    entry.source = stream  # our write, now confirmed by the stream that owns it
                continue  # an echo of our own write, or older than what we hold
            self.entries[change.key] = Entry.of(stream, change.rv, change.view)
            self._notify(change.key)

    def _replace(self, stream: str, scope: str | None, listed: dict[SecretKey, Change], list_rv: int) -> None:
        """A complete list of one stream: what it no longer holds was deleted while we were not watching."""
        gone = [
            key
            for key, entry in self.entries.items()
            if entry.source == stream
            and (scope is None or key[0] == scope)
            and key not in listed
            and entry.rv <= list_rv
        ]
        for key in gone:
            del self.entries[key]
            self._notify(key)
        self._apply(stream, list(listed.values()))

    def _listed(self) -> None:
        self._pending_lists -= 1
        if self._pending_lists == 0:
            self.synced.set()

    def _notify(self, key: SecretKey) -> None:
        if self.on_change is not None and self.synced.is_set():
            self.on_change(*key)  # before the first sync, every certificate is reconciled anyway

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        # Back-pressure: a stream waits until the loop applied its page, so a relist never queues 10,000 objects.
        while not done.wait(1.0):
            if self._stop.is_set() or self._loop.is_closed():
                return

    # --- the streams (threads) --------------------------------------------------------------------------------

    def _run_stream(self, stream: str, scope: str | None) -> None:
        rv: str | None = None
        first = True
        delay, last_error = 0.5, ""
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list(stream, scope)
                    if first:
                        self._post(self._listed)
                        first = False
                    elif self.on_relist is not None:
                        self.on_relist()
                rv = self._watch(stream, scope, rv)
                delay, last_error = 0.5, ""
            except Gone:
                log.info("secrets (%s, %s): resourceVersion too old, listing again", stream, scope or "all")
                rv = None
            except Exception as exc:  # a dropped connection, an apiserver restart: resume after a pause
                where = f"secrets ({stream}, {scope or 'all namespaces'})"
                if is_outage(exc):
                    log.debug("%s: watch interrupted (%s); resuming", where, exc)  # apihealth logs the outage once
                elif str(exc) != last_error:
                    log.warning("%s: cannot list or watch (%s); retrying", where, exc)
                last_error = str(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _url(self, scope: str | None, **query: str) -> str:
        path = f"/api/v1/namespaces/{scope}/secrets" if scope else "/api/v1/secrets"
        return f"{self.api_client.configuration.host}{path}?{urllib.parse.urlencode(query)}"

    def _request(self, url: str, accept: str, timeout: float | tuple[float, float]) -> Any:
        config = self.api_client.configuration
        headers = {"Accept": accept}
        token = config.auth_settings().get("BearerToken", {}).get("value")
        if token:
            headers["Authorization"] = token
        resp = self.api_client.call_api("GET", url, header_params=headers, _request_timeout=timeout)
        if resp.status == 410:
            raise Gone()
        if resp.status >= 400:
            raise ApiException(status=resp.status, reason=f"GET {url.split('?')[0]}: {resp.read()[:300]!r}")
        return resp

    @staticmethod
    def _selector(stream: str) -> str:
        return f"{MANAGED_BY}={MANAGER}" if stream == OURS else f"{MANAGED_BY}!={MANAGER}"

    def _change(self, stream: str, kind: str, obj: Mapping[str, Any]) -> Change:
        meta = obj.get("metadata") or {}
        key = (sys.intern(meta.get("namespace", "")), meta.get("name", ""))
        rv = version(meta.get("resourceVersion"))
        view = None
        if kind == "put" and stream == OURS:
            view = secret_from_json(obj)
            if self.wanted is not None and not self.wanted(*key):
                size = sum(len(v) for v in view.data.values())
                if size > UNKNOWN_ENTRY_BYTES or size > self.unknown_budget:
                    view = None  # nobody of this shard names it: a version is enough
                else:
                    self.unknown_budget -= size  # kept until the next sweep: a certificate may name it soon
        return Change(kind, key, rv, view)

    def sweep(self) -> int:
        """On the loop: drops the data of every Secret nobody of this shard names (another shard's, one whose
        certificate is gone, labelled junk); returns how many. The budget for unnamed Secrets starts again."""
        if self.wanted is None:
            return 0
        dropped = 0
        for key, entry in self.entries.items():
            if entry.packed is not None and entry.source == OURS and not self.wanted(*key):
                entry.packed = None
                dropped += 1
        self.unknown_budget = UNKNOWN_BUDGET_BYTES
        return dropped

    def _list(self, stream: str, scope: str | None) -> str:
        listed: dict[SecretKey, Change] = {}
        accept = "application/json" if stream == OURS else METADATA_LIST
        token = ""
        while True:
            query = {"labelSelector": self._selector(stream), "limit": str(self.page_size)}
            if token:
                query["continue"] = token
            page = json.loads(self._request(self._url(scope, **query), accept, 60).read())
            for item in page.get("items") or []:
                change = self._change(stream, "put", item)
                listed[change.key] = change
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                list_rv: str = page["metadata"]["resourceVersion"]
                break
        self._post(self._replace, stream, scope, listed, version(list_rv))
        return list_rv

    def _watch(self, stream: str, scope: str | None, rv: str) -> str:
        """Returns the resourceVersion to resume from when the server ends the watch (its timeout)."""
        query = {
            "labelSelector": self._selector(stream),
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        accept = "application/json" if stream == OURS else METADATA_WATCH
        resp = self._request(self._url(scope, **query), accept, (30, self.watch_seconds + 30))
        try:
            for event in self._events(resp):
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(f"watch error: {obj.get('message')}")
                rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                if kind == "BOOKMARK":
                    continue
                change = self._change(stream, "delete" if kind == "DELETED" else "put", obj)
                self._post(self._apply, stream, [change])
                if self._stop.is_set():
                    break
        finally:
            resp.response.release_conn()
        return rv

    @staticmethod
    def _events(resp: Any) -> Iterator[dict[str, Any]]:
        for line in iter_resp_lines(resp.response):
            if line:
                yield json.loads(line)
