"""The MtlsRevocations the operator watches, indexed by what they revoke: issuer → serial → the revocation.

Only resolved revocations (the operator recorded the issuer and serial on the object) count; several revocations
of one serial keep the earliest (its date and reason are the CRL entry's). Small: one entry per revoked certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.revocation import RevocationKey, parse_revocation, resolved_of
from mtls_operator.api.status import utcnow
from mtls_operator.pki.crl import RevokedEntry


class RevocationBook:
    def __init__(self) -> None:
        self._by_issuer: dict[IssuerKey, dict[int, dict[RevocationKey, RevokedEntry]]] = {}
        self._where: dict[RevocationKey, tuple[IssuerKey, int]] = {}

    def store(self, body: Mapping[str, Any]) -> tuple[IssuerKey | None, bool]:
        """(the issuer whose CRL it belongs to, whether that CRL's entries changed); (None, False) unresolved."""
        meta = body.get("metadata") or {}
        key: RevocationKey = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        resolved = resolved_of(body)
        if resolved is None:
            return None, self._forget(key) is not None
        try:
            spec = parse_revocation(body)
        except ValueError:
            return None, self._forget(key) is not None
        entry = RevokedEntry(resolved.serial_number, spec.created or utcnow(), spec.reason)
        previous = self._where.get(key)
        if previous == (resolved.issuer, resolved.serial_number):
            return resolved.issuer, False
        self._forget(key)
        self._where[key] = (resolved.issuer, resolved.serial_number)
        self._by_issuer.setdefault(resolved.issuer, {}).setdefault(resolved.serial_number, {})[key] = entry
        return resolved.issuer, True

    def forget(self, body: Mapping[str, Any]) -> IssuerKey | None:
        meta = body.get("metadata") or {}
        return self._forget((str(meta.get("namespace") or ""), str(meta.get("name") or "")))

    def _forget(self, key: RevocationKey) -> IssuerKey | None:
        where = self._where.pop(key, None)
        if where is None:
            return None
        issuer, serial = where
        serials = self._by_issuer.get(issuer, {})
        holders = serials.get(serial, {})
        holders.pop(key, None)
        if not holders:
            serials.pop(serial, None)
        if not serials:
            self._by_issuer.pop(issuer, None)
        return issuer

    def entries(self, issuer: IssuerKey) -> list[RevokedEntry]:
        """One entry per serial: the earliest revocation of it."""
        return sorted(
            min(holders.values(), key=lambda e: e.revoked_at) for holders in self._by_issuer.get(issuer, {}).values()
        )

    def revoked(self, issuer: IssuerKey, serial_number: int) -> RevokedEntry | None:
        holders = self._by_issuer.get(issuer, {}).get(serial_number)
        return min(holders.values(), key=lambda e: e.revoked_at) if holders else None

    def revocations_of(self, issuer: IssuerKey) -> list[RevocationKey]:
        return sorted(k for k, (i, _) in self._where.items() if i == issuer)

    def counts(self) -> dict[IssuerKey, int]:
        return {issuer: len(serials) for issuer, serials in self._by_issuer.items()}
