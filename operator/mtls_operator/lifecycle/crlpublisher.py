"""An issuer's CRL: signed (by its key, in a Secret or a token) when policy.crlrefresh says so, and kept in a
ConfigMap of the issuer's CA namespace (api.names.crl_configmap_name), which is the CRL's durable home.

The ConfigMap, not the issuer's status, because it is what servers mount and what the HTTP endpoint serves, and a
CRL of thousands of entries does not belong in a status; it holds the CA certificate too (`ca.crt`), so a server
of the issuer's own can mount that one ConfigMap. Every replica reads it; only the issuer's status writer (the leader,
shard 0) signs.
"""

from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtls_operator.api.issuer import IssuerSpec
from mtls_operator.api.names import CA_CRL, CA_CRT, MANAGED_BY, MANAGER, PUBLISHED_BY, crl_configmap_name
from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.status import format_time
from mtls_operator.kube.client import KubeIO
from mtls_operator.lifecycle.policy.crlrefresh import crl_due, next_number
from mtls_operator.lifecycle.signers.issuerca import IssuerCA
from mtls_operator.pki.crl import CrlInfo, RevokedEntry, build_crl, crl_info, crl_pem, read_crl
from mtls_operator.pki.signing import authority_key_identifier

log = logging.getLogger(__name__)

# A ConfigMap holds at most 1 MiB: about 40 bytes of DER per entry, PEM a third more, the CA beside it. Past this
# many the CRL is not signed and the issuer says why (the platform team removes revocations of expired
# certificates, which servers no longer need).
MAX_CRL_ENTRIES = 10_000


@dataclass(frozen=True)
class PublishedCrl:
    info: CrlInfo
    pem: bytes
    configmap: str  # namespace/name

    @functools.cached_property
    def der(self) -> bytes:
        """As servers fetch it over HTTP (RFC 5280 §4.2.1.13: DER, application/pkix-crl)."""
        return read_crl(self.pem).public_bytes(serialization.Encoding.DER)


class CrlProblem(Exception):
    """The CRL cannot be published; the message says why and what to do (the issuer's CRLReady condition)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def crl_owner(key: IssuerKey) -> str:
    """The published-by annotation that marks the ConfigMap as this issuer's CRL."""
    return f"{key.kind}/{key.namespace}/{key.name}"


# How long a CRL read from its ConfigMap is reused by readers (the HTTP endpoint, publishCA): an endpoint anyone in
# the cluster may call must not turn each request into an API request; a new CRL reaches readers within this.
READ_REUSE = datetime.timedelta(seconds=5)


class CrlPublisher:
    def __init__(self, kube: KubeIO, clock: Callable[[], datetime.datetime]) -> None:
        self.kube = kube
        self.clock = clock
        self._read: dict[IssuerKey, tuple[datetime.datetime, PublishedCrl | None]] = {}

    async def current(self, key: IssuerKey, namespace: str) -> PublishedCrl | None:
        """The CRL in service of an issuer whose CA namespace is `namespace` (reused for READ_REUSE)."""
        now = self.clock()
        cached = self._read.get(key)
        if cached is not None and datetime.timedelta(0) <= now - cached[0] < READ_REUSE:
            return cached[1]
        name = crl_configmap_name(key.kind, key.name)
        existing = await self.kube.get_configmap(namespace, name)
        published = None
        if existing is not None and _ours(existing, key):
            info, pem = _current(existing)
            if info is not None and pem is not None:
                published = PublishedCrl(info, pem, f"{namespace}/{name}")
        self._read[key] = (now, published)
        return published

    def listed(self, key: IssuerKey) -> tuple[int, frozenset[int]] | None:
        """(number, serials) of the CRL last signed or read here, without a read (lifecycle.revocations)."""
        cached = self._read.get(key)
        if cached is None or cached[1] is None:
            return None
        return cached[1].info.number, cached[1].info.serials

    def forget(self, key: IssuerKey) -> None:
        self._read.pop(key, None)

    async def ensure(
        self,
        spec: IssuerSpec,
        namespace: str,
        loaded: IssuerCA,
        entries: Sequence[RevokedEntry],
        now: datetime.datetime,
    ) -> tuple[PublishedCrl, datetime.datetime, bool]:
        """(the CRL in service, when to look again, whether it was signed now). Raises CrlProblem."""
        if len(entries) > MAX_CRL_ENTRIES:
            raise CrlProblem(
                "CRLFull",
                f"{len(entries)} revoked certificates exceed the {MAX_CRL_ENTRIES} a CRL ConfigMap holds; delete "
                "the MtlsRevocations of certificates that have expired",
            )
        name = crl_configmap_name(spec.key.kind, spec.key.name)
        where = f"{namespace}/{name}"
        existing = await self.kube.get_configmap(namespace, name)
        if existing is not None and not _ours(existing, spec.key):
            raise CrlProblem(
                "CRLConfigMapConflict",
                f"ConfigMap {where} exists and is not this issuer's CRL; delete or rename it",
            )
        current, current_pem = _current(existing)
        ca_key_id = authority_key_identifier(loaded.ca.certificate).key_identifier
        wanted = frozenset(e.serial_number for e in entries)
        decision = crl_due(current, wanted, ca_key_id, spec.crl_lifetime, now)
        if not decision.due and current is not None and current_pem is not None:
            published = PublishedCrl(current, current_pem, where)
            self._read[spec.key] = (self.clock(), published)
            return published, decision.refresh_at, False
        number = next_number(current, now)
        crl = await loaded.pool.run(build_crl, loaded.ca, list(entries), number, now, now + spec.crl_lifetime)
        pem = crl_pem(crl)
        data = {CA_CRL: pem.decode(), CA_CRT: loaded.ca_pem.decode()}
        await self.kube.write_configmap(namespace, name, data, existing, source=crl_owner(spec.key))
        log.info("%s: signed CRL number %d (%s, %d revoked) into ConfigMap %s", spec.key, number, decision.reason,
                 len(entries), where)  # fmt: skip
        published = PublishedCrl(crl_info(crl), pem, where)
        self._read[spec.key] = (self.clock(), published)
        return published, decision.refresh_at, True


def _ours(configmap: dict[str, Any], key: IssuerKey) -> bool:
    meta = configmap.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    return labels.get(MANAGED_BY) == MANAGER and annotations.get(PUBLISHED_BY) == crl_owner(key)


def _current(existing: dict[str, Any] | None) -> tuple[CrlInfo | None, bytes | None]:
    text = ((existing or {}).get("data") or {}).get(CA_CRL)
    if not text:
        return None, None
    try:
        crl: x509.CertificateRevocationList = read_crl(text.encode())
    except ValueError:
        return None, None  # unreadable: signed again (with a number above it: the clock's floor)
    return crl_info(crl), text.encode()


def crl_status(published: PublishedCrl) -> dict[str, Any]:
    info = published.info
    return {
        "number": str(info.number),
        "thisUpdate": format_time(info.this_update),
        "nextUpdate": format_time(info.next_update) if info.next_update else None,
        "revokedCertificates": len(info.serials),
        "configMap": published.configmap,
    }
