"""One reconcile of one MtlsIssuer or ClusterMtlsIssuer: its status, which the certificates that use it read.

Ready says whether it can sign (its spec is usable; its CA Secret exists, holds a CA certificate and the key that
belongs to it, and is valid now). `status.ca` describes the CA (never its key). When the CA Secret gets a new
keypair, `status.rotation.startedTime` records when the operator first saw it: the certificates it signed under the
old CA are re-issued over `spec.rotation.spread` from then (policy.carotation), and
`status.certificatesOnPreviousCA` counts those not moved yet.

While it can sign, it also keeps its CRL current (lifecycle.crlpublisher): condition CRLPublished, `status.crl`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.issuer import IssuerSpec, issuer_key_of, parse_issuer
from mtls_operator.api.names import CLUSTER_EVENTS_NAMESPACE, TLS_CRT
from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.status import ConditionType, find_condition, format_time
from mtls_operator.hsm.token import HsmUnavailable
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.objects import Owner
from mtls_operator.lifecycle.attempt import Rejected
from mtls_operator.lifecycle.crlpublisher import CrlProblem, CrlPublisher, crl_status
from mtls_operator.lifecycle.issuers import IssuerDirectory
from mtls_operator.lifecycle.policy.readiness import Condition, merge_conditions
from mtls_operator.lifecycle.signers.issuerca import IssuerCA, IssuerCALoader
from mtls_operator.pki.certificates import describe_certificate, first_certificate, issued_by
from mtls_operator.pki.crl import RevokedEntry
from mtls_operator.pki.signing import CertificateAuthority

log = logging.getLogger(__name__)

CRL_RETRY = datetime.timedelta(seconds=30)  # a token that could not sign the CRL is asked again this soon


@dataclass(frozen=True)
class IssuerUser:
    """A certificate that names the issuer: where its certificate in service is."""

    namespace: str
    secret_name: str


class IssuerStatusReconciler:
    def __init__(
        self,
        kube: KubeIO,
        cas: IssuerCALoader,
        directory: IssuerDirectory,
        clock: Callable[[], datetime.datetime],
        on_status: Callable[[IssuerKey, Mapping[str, Any]], None] | None = None,
        revoked: Callable[[IssuerKey], list[RevokedEntry]] = lambda _key: [],
    ) -> None:
        self.kube = kube
        self.revoked = revoked  # the issuer's resolved revocations (runtime.revocationbook)
        self.crls = CrlPublisher(kube, clock)
        self.crl_refresh: dict[IssuerKey, datetime.datetime] = {}  # when each CRL must be looked at again
        self.cas = cas
        self.directory = directory
        self.clock = clock
        self.on_status = on_status  # the metrics follow every status we compute
        # (namespace, Secret) -> (its resourceVersion, the CA's fingerprint, signed by that CA): a recount checks
        # only what changed since the last one.
        self._checked: dict[tuple[str, str], tuple[str, str, bool]] = {}

    async def reconcile(self, kind: str, body: Mapping[str, Any], users: Sequence[IssuerUser]) -> dict[str, Any] | None:
        """Writes what changed of the status; returns the updated object (None: nothing written or gone)."""
        key = issuer_key_of(kind, body)
        old = body.get("status") or {}
        now = self.clock()
        status: dict[str, Any] = {"certificates": len(users)}
        events: list[tuple[str, str, str]] = []
        crl_condition = None
        try:
            spec = parse_issuer(kind, body)
        except ValueError as exc:
            ready = Condition(ConditionType.READY, "False", "InvalidSpec", str(exc))
        else:
            ca_namespace = self.directory.ca_namespace(key)
            loaded = await self.cas.load(spec, ca_namespace, now, probe=True, refused_pin=old.get("pinRefused"))
            # Kept across restarts and leaders: a token counts every refused PIN, so a PIN it refused is not
            # presented again by the next process either, until the PIN Secret changes.
            status["pinRefused"] = self.cas.refused_pin(ca_namespace, spec.pkcs11) if spec.pkcs11 else None
            if not isinstance(loaded, Rejected):
                ca = loaded.ca
                info = describe_certificate(ca.certificate)
                ready = Condition(ConditionType.READY, "True", "CAReady", _ready_message(loaded, info.issuer))
                status["ca"] = {
                    "subject": ca.certificate.subject.rfc4514_string()[:1024],
                    "serialNumber": info.serial_number,
                    "notBefore": format_time(info.not_before),
                    "notAfter": format_time(info.not_after),
                    "fingerprint": info.fingerprint_sha256,
                    "key": loaded.key_location[:1024],
                }
                on_previous = await self._on_previous_ca(ca, info.fingerprint_sha256, users)
                status["certificatesOnPreviousCA"] = on_previous
                status["rotation"] = _rotation(old, info.fingerprint_sha256, on_previous, spec.rotation_spread, now)
                events += _rotation_events(old.get("rotation") or {}, status["rotation"] or {}, on_previous)
                crl_condition = await self._crl(spec, key, loaded, status, events, now)
            else:
                ready = Condition(ConditionType.READY, "False", loaded.reason, loaded.message)
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        status["observedGeneration"] = generation
        wanted = [ready] + ([crl_condition] if crl_condition is not None else [])
        status["conditions"] = merge_conditions(old.get("conditions") or [], wanted, generation, now)
        previous = find_condition(old)
        if ready.status != "True" and (previous.get("reason"), previous.get("message")) != (
            ready.reason,
            ready.message,
        ):
            events.append(("Warning", ready.reason, ready.message))
        patch = {
            k: _patch_value(old.get(k), v)
            for k, v in status.items()
            if old.get(k) != v and not (v is None and k not in old)
        }
        updated = await self.kube.patch_issuer_status(kind, key.namespace, key.name, patch) if patch else None
        if self.on_status is not None:
            self.on_status(key, updated.get("status") or {} if updated else {**old, **status})
        owner = Owner.of(body, kind=kind, events_namespace=None if key.namespace else CLUSTER_EVENTS_NAMESPACE)
        for event_type, reason, message in events:
            log.info("%s: %s %s: %s", key, event_type, reason, message)
            try:
                await self.kube.post_event(owner, event_type, reason, message)
            except Exception as exc:  # the status says it too; a lost Event must not redo the status work
                log.warning("%s: could not post Event %s: %s", key, reason, exc)
        return updated

    async def _crl(
        self,
        spec: IssuerSpec,
        key: IssuerKey,
        loaded: IssuerCA,
        status: dict[str, Any],
        events: list[tuple[str, str, str]],
        now: datetime.datetime,
    ) -> Condition:
        entries = self.revoked(key)
        try:
            published, refresh_at, signed = await self.crls.ensure(
                spec, self.directory.ca_namespace(key), loaded, entries, now
            )
        except CrlProblem as exc:
            self.crl_refresh.pop(key, None)
            events.append(("Warning", exc.reason, str(exc)))
            return Condition(ConditionType.CRL_PUBLISHED, "False", exc.reason, str(exc))
        except HsmUnavailable as exc:
            self.crl_refresh[key] = now + CRL_RETRY
            return Condition(
                ConditionType.CRL_PUBLISHED, "False", "HSMUnavailable", f"the CRL could not be signed: {exc}"
            )
        self.crl_refresh[key] = refresh_at
        status["crl"] = crl_status(published)
        info = published.info
        if signed:
            events.append(("Normal", "CRLSigned", f"CRL number {info.number} lists {len(info.serials)} revoked "
                           f"certificate(s); next update {format_time(info.next_update or now)}"))  # fmt: skip
        message = f"CRL number {info.number} in ConfigMap {published.configmap}, {len(info.serials)} revoked"
        return Condition(ConditionType.CRL_PUBLISHED, "True", "CRLSigned", message)

    async def _on_previous_ca(self, ca: CertificateAuthority, fingerprint: str, users: Sequence[IssuerUser]) -> int:
        """How many certificates in service the current CA did not sign (a signature check each, off the loop,
        only for Secrets that changed since the last count)."""
        unknown: list[tuple[tuple[str, str], str, bytes]] = []
        on_previous = 0
        for user in users:
            where = (user.namespace, user.secret_name)
            live = await self.kube.get_secret(*where)
            if live is None or not live.get(TLS_CRT):
                continue
            known = self._checked.get(where)
            if known is not None and known[:2] == (live.resource_version, fingerprint):
                on_previous += not known[2]
            else:
                unknown.append((where, live.resource_version, live.data[TLS_CRT]))
        if unknown:
            results = await self.cas.ctx.cpu.run(_signed_by_each, [pem for _, _, pem in unknown], ca)
            for (where, version, _), signed in zip(unknown, results, strict=True):
                self._checked[where] = (version, fingerprint, signed)
                on_previous += not signed
        return on_previous


def _ready_message(loaded: IssuerCA, issuer: str) -> str:
    if loaded.in_token:
        return f"{loaded.key_location} signs for the CA {issuer} (probed just now)"
    return f"{loaded.key_location} holds a valid CA: {issuer}"


def _signed_by_each(bundles: list[bytes], ca: CertificateAuthority) -> list[bool]:
    signed = []
    for pem in bundles:
        leaf = first_certificate(pem)
        signed.append(leaf is not None and issued_by(leaf, ca.certificate))
    return signed


def _rotation(
    old: Mapping[str, Any], fingerprint: str, on_previous: int, spread: datetime.timedelta, now: datetime.datetime
) -> dict[str, Any] | None:
    """The rotation record: started when the CA's fingerprint changed under a recorded one; completed when no
    certificate is left on the previous CA; kept (completed) until the next rotation."""
    recorded = (old.get("ca") or {}).get("fingerprint")
    rotation = dict(old.get("rotation") or {}) or None
    if recorded and recorded != fingerprint:
        rotation = {
            "startedTime": format_time(now),
            "previousFingerprint": recorded,
            "spreadSeconds": int(spread.total_seconds()),
        }
    if rotation is not None and on_previous == 0 and not rotation.get("completedTime"):
        rotation["completedTime"] = format_time(now)
    return rotation


def _rotation_events(old: Mapping[str, Any], new: Mapping[str, Any], on_previous: int) -> list[tuple[str, str, str]]:
    if new.get("startedTime") and new.get("startedTime") != old.get("startedTime"):
        message = (
            f"the CA Secret has a new CA keypair (previous fingerprint {new['previousFingerprint']}): "
            f"{on_previous} certificate(s) it signed move to the new CA over the next {new['spreadSeconds']} s"
        )
        return [("Normal", "CARotationStarted", message)]
    if new.get("completedTime") and not old.get("completedTime"):
        return [("Normal", "CARotationCompleted", "every certificate that uses it is signed by the new CA")]
    return []


def _patch_value(old: Any, new: Any) -> Any:
    """A merge patch replaces nested objects key by key: a key the new object lacks is removed with None."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return {**{k: None for k in old if k not in new}, **new}
    return new
