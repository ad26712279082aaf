"""One reconcile of one MtlsCertificate: read what is there, ask the policies, write the result.

Level-based like a controller-runtime reconciler: the same inputs give the same writes, so running it
again (after a restart, a watch event or a timer) is always safe. CPU work (key generation, signing)
runs in a thread pool; `cryptography` releases the GIL, so the event loop keeps serving other objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from .kube import Conflict, KubeIO, SecretView
from .pki.certificates import CertificateInfo, describe_certificate, load_pem_bundle, to_pem
from .pki.csr import build_csr, certifies_csr, check_partner_csr, csr_matches
from .pki.keys import (
    PrivateKey,
    generate_private_key,
    key_spec_of,
    load_private_key,
    private_key_to_pem,
)
from .pki.signing import CertificateAuthority, load_ca, sign_csr
from .pki.verify import Rejection, Verified, verify_signed_certificate
from .policy import readiness as phases
from .policy.keymanager import LIVE, decide_pending_key
from .policy.readiness import Condition, merge_conditions
from .policy.trigger import Trigger, expiry_warning_threshold, issuance_trigger, next_wakeup, renewal_time
from .spec import CertificateSpec, parse_spec

log = logging.getLogger(__name__)

TLS_SECRET = "kubernetes.io/tls"
KEY_CACHE_SIZE = 2048  # parsed pending keys kept in memory (a renewal wave, not the whole fleet)
CA_CACHE_SIZE = 64
OPAQUE_SECRET = "Opaque"


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _ts(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    """What one reconcile decided; `apply` turns it into a status patch and Events."""

    phase: str
    ready: Condition
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    wake_at: datetime.datetime | None = None
    renewal_due: Condition | None = None


@dataclass(frozen=True)
class Attempt:
    """What one reconcile read about one certificate, handed to each step instead of five arguments."""

    body: Mapping[str, Any]
    spec: CertificateSpec
    status: Mapping[str, Any]
    live: SecretView | None
    now: datetime.datetime


@dataclass
class PendingKey:
    key: PrivateKey
    pem: bytes
    location: str
    stored: bool = True  # False: generated for an automatic signer, written only with its certificate


class Reconciler:
    def __init__(
        self,
        kube: KubeIO,
        *,
        cpu_threads: int = 2,
        clock: Callable[[], datetime.datetime] = utcnow,
        on_outcome: Callable[[Mapping[str, Any], Outcome], None] | None = None,
        on_key_generated: Callable[[], None] | None = None,
        released_slot: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self.kube = kube
        self.cpu = ThreadPoolExecutor(max_workers=cpu_threads, thread_name_prefix="pki")
        self.clock = clock
        self.on_outcome = on_outcome
        self.on_key_generated = on_key_generated
        self.released_slot = released_slot or contextlib.nullcontext
        self._keys: OrderedDict[bytes, PrivateKey] = OrderedDict()
        self._cas: OrderedDict[bytes, CertificateAuthority] = OrderedDict()

    async def _cpu(self, fn: Callable[..., Any], *args: Any) -> Any:
        """CPU work in the thread pool; the work-queue slot is lent to others while it waits its turn."""
        async with self.released_slot():
            return await asyncio.get_running_loop().run_in_executor(self.cpu, fn, *args)

    async def _ca(self, secret: SecretView) -> CertificateAuthority:
        """The CA of a Secret, parsed off the loop once per content (every CA-signed reconcile needs it)."""
        digest = hashlib.sha256((secret.get("tls.crt") or b"") + b"\0" + (secret.get("tls.key") or b"")).digest()
        ca = self._cas.get(digest)
        if ca is None:
            ca = await self._cpu(load_ca, secret.get("tls.crt"), secret.get("tls.key"))
            self._cas[digest] = ca
            while len(self._cas) > CA_CACHE_SIZE:
                self._cas.popitem(last=False)
        return ca

    async def _stored_key(self, secret: SecretView | None) -> tuple[PrivateKey | None, bool]:
        """(key, unreadable); (None, False) when no key is stored.

        Loading a key costs a signature self-test (about a millisecond): off the loop, and remembered by a digest
        of its PEM, because a pending key is read again on every reconcile until its certificate arrives.
        """
        pem = secret.get("tls.key") if secret else None
        if not pem:
            return None, False
        digest = hashlib.sha256(pem).digest()
        key = self._keys.get(digest)
        if key is None:
            try:
                key = await self._cpu(load_private_key, pem)
            except ValueError:
                return None, True
            self._keys[digest] = key
            while len(self._keys) > KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(digest)
        return key, False

    async def reconcile(self, body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, datetime.datetime | None]:
        """Returns (the updated object or None, when to look again by the clock alone)."""
        now = self.clock()
        try:
            spec = parse_spec(body)
        except (ValueError, KeyError, TypeError) as exc:
            outcome = Outcome(phases.FAILED, Condition("Ready", "False", "InvalidSpec", str(exc)))
            return await self.apply(body, outcome, now), None
        try:
            outcome = await self._decide(body, spec, now)
        except Conflict as exc:
            # Lost a race with another writer: decide again from fresh reads, soon.
            log.info("conflict on %s/%s: %s; retrying", spec.namespace, spec.name, exc)
            return None, now + datetime.timedelta(seconds=1)
        return await self.apply(body, outcome, now), outcome.wake_at

    async def _decide(self, body: Mapping[str, Any], spec: CertificateSpec, now: datetime.datetime) -> Outcome:
        status = body.get("status") or {}
        live = await self.kube.get_secret(spec.namespace, spec.secret_name)
        if live is not None and not live.managed_for(spec.uid):
            return Outcome(
                phases.FAILED,
                Condition(
                    "Ready",
                    "False",
                    "SecretConflict",
                    f"Secret {spec.secret_name} exists and is not managed by this MtlsCertificate; "
                    "delete it or choose another spec.secretName",
                ),
            )
        attempt = Attempt(body=body, spec=spec, status=status, live=live, now=now)
        chain = _certificates_in(live)
        current = describe_certificate(chain[0]) if chain else None
        current_key = key_spec_of(chain[0].public_key()) if chain else None  # type: ignore[arg-type]
        trigger = issuance_trigger(
            current,
            current_key,
            common_name=spec.subject.common_name,
            wanted_key=None if spec.outbound else spec.key,
            renew_before=spec.renew_before,
            uid=spec.uid,
            now=now,
        )
        if trigger is None and spec.partner_csr and not certifies_csr(chain[0], spec.partner_csr):
            # The partner sent a new CSR (new key): sign it now, not at the next renewal.
            trigger = Trigger("CSRChanged", "spec.csr asks for another key than the certificate in service")
        renew_at = renewal_time(current.not_before, current.not_after, spec.renew_before, spec.uid) if current else None
        base: dict[str, Any] = {}
        if current is not None:
            base = _certificate_status(current, renew_at)
        if trigger is None:
            assert current is not None and live is not None
            outcome = Outcome(
                phases.READY,
                Condition("Ready", "True", "Ready", f"certificate is valid until {_ts(current.not_after)}"),
                status={**base, "csr": None, "csrPublishedTime": None},
            )
            if spec.signer.kind == "manual" and not spec.outbound:
                outcome = await self._replacement(attempt, live, outcome)
        else:
            outcome = await self._issue(attempt, trigger)
            if outcome.phase != phases.READY:
                outcome.status = {**base, **outcome.status}
        if outcome.phase != phases.READY or trigger is None:
            outcome.wake_at = next_wakeup(current, renew_at, now)
        _add_renewal_state(outcome, status, trigger, current, now)
        return outcome

    async def _issue(self, a: Attempt, trigger: Trigger) -> Outcome:
        """A new certificate is needed: get it from the signer, or publish what the human signer needs."""
        spec = a.spec
        has_certificate = trigger.reason != "NoCertificate"
        if spec.outbound:
            return await self._sign_partner_csr(a, trigger)
        if spec.signer.kind == "kubernetes":
            return Outcome(
                phases.FAILED,
                Condition("Ready", "False", "SignerNotSupported", "the kubernetes signer is not implemented yet"),
            )
        if spec.signer.kind == "ca":
            return await self._sign_with_ca(a, has_certificate, trigger)
        pending = await self._pending_key(a, has_certificate, persist=True)
        return await self._manual(a, pending, trigger)

    async def _replacement(self, a: Attempt, live: SecretView, ready: Outcome) -> Outcome:
        """A new hand-signed certificate for the key in service (e.g. the partner re-signed with a longer
        validity) replaces the current one once verified; a bad one only raises a condition and an Event."""
        spec, now = a.spec, a.now
        assert spec.signer.secret_name is not None
        signed = await self.kube.get_secret(spec.namespace, spec.signer.secret_name)
        if signed is None or _already_in_service(signed, live):
            return ready
        key, _ = await self._stored_key(live)
        if key is None:
            return ready
        result = verify_signed_certificate(
            signed.get("tls.crt"), signed.get("ca.crt"), key, spec.subject.common_name, now
        )
        if isinstance(result, Verified):
            pending = PendingKey(key, live.data["tls.key"], LIVE)
            return await self._put_in_service(a, pending, result, Trigger("Replaced", ""))
        ready.ready = Condition("Ready", "False", result.reason, _rejected(signed, result))
        return ready

    async def _pending_key(self, a: Attempt, has_certificate: bool, *, persist: bool) -> PendingKey:
        """`persist`: store a new key before returning (its CSR will be published and may be signed days later).
        An automatic signer issues at once, so its new key is written only together with its certificate."""
        body, spec, live = a.body, a.spec, a.live
        read_next = has_certificate and persist
        next_secret = await self.kube.get_secret(spec.namespace, spec.next_secret_name) if read_next else None
        if next_secret is not None and not next_secret.managed_for(spec.uid):
            next_secret = None  # never read or overwrite a key we did not store; creating it will conflict
        live_key, live_bad = await self._stored_key(live)
        next_key, next_bad = await self._stored_key(next_secret)
        decision = decide_pending_key(
            has_certificate=has_certificate,
            rotation_policy=spec.rotation_policy,
            wanted=spec.key,
            live_key=key_spec_of(live_key) if live_key else None,
            live_key_unreadable=live_bad,
            next_key=key_spec_of(next_key) if next_key else None,
            next_key_unreadable=next_bad,
        )
        stored = live if decision.location == LIVE else next_secret
        if not decision.generate:
            key = live_key if decision.location == LIVE else next_key
            assert key is not None and stored is not None
            return PendingKey(key, stored.data["tls.key"], decision.location)
        log.info(
            "generating %s key for %s/%s (%s, stored in the %s Secret)",
            spec.key,
            spec.namespace,
            spec.name,
            decision.reason,
            decision.location,
        )
        key = await self._cpu(generate_private_key, spec.key)
        if self.on_key_generated is not None:
            self.on_key_generated()
        pem = await self._cpu(private_key_to_pem, key)
        if not persist:
            return PendingKey(key, pem, decision.location, stored=False)
        # The key is stored before any CSR derived from it is published.
        if decision.location == LIVE:
            if stored is None:
                await self.kube.create_secret(
                    body, spec.secret_name, TLS_SECRET, {"tls.key": pem, "tls.crt": b"", "ca.crt": b""}
                )
            else:
                await self.kube.replace_secret_data(stored, {**stored.data, "tls.key": pem})
        elif stored is None:
            await self.kube.create_secret(body, spec.next_secret_name, OPAQUE_SECRET, {"tls.key": pem})
        else:
            await self.kube.replace_secret_data(stored, {"tls.key": pem})
        return PendingKey(key, pem, decision.location)

    async def _manual(self, a: Attempt, pending: PendingKey, trigger: Trigger) -> Outcome:
        spec, status, live, now = a.spec, a.status, a.live, a.now
        events: list[tuple[str, str, str]] = []
        csr_pem = status.get("csr")
        published_at = status.get("csrPublishedTime")
        if not csr_matches(csr_pem, pending.key, spec.subject, spec.dns_names):
            csr_pem = (await self._cpu(build_csr, pending.key, spec.subject, spec.dns_names)).decode()
            published_at = _ts(self.clock())  # after key generation, which can take seconds
            events.append(
                (
                    "Normal",
                    "CSRCreated",
                    f"CSR for CN={spec.subject.common_name} ({spec.key}) published in status.csr; "
                    f"get it with `kubectl mtls csr {spec.name} -n {spec.namespace}` and put the signed "
                    f"certificate into Secret {spec.signer.secret_name}",
                )
            )
        request_status = {"csr": csr_pem, "csrPublishedTime": published_at}
        assert spec.signer.secret_name is not None
        signed = await self.kube.get_secret(spec.namespace, spec.signer.secret_name)
        if signed is not None and not _already_in_service(signed, live):
            result = verify_signed_certificate(
                signed.get("tls.crt"), signed.get("ca.crt"), pending.key, spec.subject.common_name, now
            )
            if isinstance(result, Verified):
                return await self._put_in_service(a, pending, result, trigger)
            outcome = _waiting(spec, trigger, Condition("Ready", "False", result.reason, _rejected(signed, result)))
        else:
            outcome = _waiting(
                spec,
                trigger,
                Condition(
                    "Ready",
                    "False" if trigger.reason in ("NoCertificate", "Expired") else "True",
                    "AwaitingSignature",
                    f"CSR published in status.csr since {published_at}; waiting for the signed certificate "
                    f"in Secret {spec.signer.secret_name}",
                ),
            )
        outcome.status.update(request_status)
        outcome.events = events + outcome.events
        return outcome

    async def _sign_with_ca(self, a: Attempt, has_certificate: bool, trigger: Trigger) -> Outcome:
        spec = a.spec
        ca_or_outcome = await self._load_ca(spec, trigger)  # before any key work: a missing CA wastes none
        if isinstance(ca_or_outcome, Outcome):
            return ca_or_outcome
        ca, ca_pem = ca_or_outcome
        pending = await self._pending_key(a, has_certificate, persist=False)
        csr = x509.load_pem_x509_csr(await self._cpu(build_csr, pending.key, spec.subject, spec.dns_names))
        leaf = await self._cpu(sign_csr, csr, ca, spec.duration, a.now)
        verified = Verified(chain=[leaf], ca_certificates=load_pem_bundle(ca_pem))
        return await self._put_in_service(a, pending, verified, trigger)

    async def _sign_partner_csr(self, a: Attempt, trigger: Trigger) -> Outcome:
        spec = a.spec
        assert spec.partner_csr is not None
        csr, problem = check_partner_csr(spec.partner_csr, spec.subject.common_name)
        if problem is not None or csr is None:
            message = problem.message if problem else "the CSR cannot be signed"
            return Outcome(phases.FAILED, Condition("Ready", "False", "CSRRejected", message))
        ca_or_outcome = await self._load_ca(spec, trigger)
        if isinstance(ca_or_outcome, Outcome):
            return ca_or_outcome
        ca, ca_pem = ca_or_outcome
        leaf = await self._cpu(sign_csr, csr, ca, spec.duration, a.now)
        verified = Verified(chain=[leaf], ca_certificates=load_pem_bundle(ca_pem))
        return await self._put_in_service(a, None, verified, trigger)

    async def _load_ca(self, spec: CertificateSpec, trigger: Trigger) -> tuple[Any, bytes] | Outcome:
        assert spec.signer.secret_name is not None
        secret = await self.kube.get_secret(spec.namespace, spec.signer.secret_name)
        if secret is None:
            return _waiting(
                spec,
                trigger,
                Condition("Ready", "False", "CANotFound", f"CA Secret {spec.signer.secret_name} does not exist"),
                phase=phases.PENDING,
            )
        try:
            ca = await self._ca(secret)
        except ValueError as exc:
            return _waiting(
                spec,
                trigger,
                Condition("Ready", "False", "CAInvalid", f"CA Secret {spec.signer.secret_name}: {exc}"),
                phase=phases.FAILED,
            )
        return ca, to_pem([ca.certificate])

    async def _put_in_service(
        self, a: Attempt, pending: PendingKey | None, verified: Verified, trigger: Trigger
    ) -> Outcome:
        """One atomic write of key + certificate + CA into the live Secret, then drop the next-key Secret."""
        body, spec, live, now = a.body, a.spec, a.live, a.now
        data = {
            "tls.key": pending.pem if pending else b"",
            "tls.crt": to_pem(verified.chain),
            "ca.crt": to_pem(verified.ca_certificates),
        }
        if live is None:
            secret_type = TLS_SECRET if pending else OPAQUE_SECRET
            if pending is None:
                data.pop("tls.key")
            await self.kube.create_secret(body, spec.secret_name, secret_type, data)
        else:
            if live.type != TLS_SECRET:
                data.pop("tls.key")
            await self.kube.replace_secret_data(live, data)
        if pending is not None and pending.location != LIVE and pending.stored:
            await self.kube.delete_secret(spec.namespace, spec.next_secret_name)
        info = describe_certificate(verified.leaf)
        status = body.get("status") or {}
        revision = int(status.get("revision") or 0) + 1
        renew_at = renewal_time(info.not_before, info.not_after, spec.renew_before, spec.uid)
        renewed = trigger.reason != "NoCertificate"
        message = f"certificate serial {info.serial_number} issued by {info.issuer}, valid until {_ts(info.not_after)}"
        return Outcome(
            phases.READY,
            Condition("Ready", "True", "Ready", f"certificate is valid until {_ts(info.not_after)}"),
            status={
                **_certificate_status(info, renew_at),
                "revision": revision,
                "csr": None,
                "csrPublishedTime": None,
                "lastIssuedTime": _ts(now),
            },
            events=[("Normal", "Renewed" if renewed else "Issued", message)],
            wake_at=_after_issuance(spec, info, renew_at, now),
        )

    async def apply(
        self,
        body: Mapping[str, Any],
        outcome: Outcome,
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """Writes status (only what changed) and posts the Events for transitions."""
        meta = body["metadata"]
        old = body.get("status") or {}
        wanted = [outcome.ready] + ([outcome.renewal_due] if outcome.renewal_due else [])
        conditions = merge_conditions(old.get("conditions") or [], wanted, int(meta.get("generation", 0)), now)
        old_ready: dict[str, Any] = next((c for c in old.get("conditions") or [] if c.get("type") == "Ready"), {})
        events = list(outcome.events)
        if (
            outcome.ready.status != "True"
            and (
                old_ready.get("reason"),
                old_ready.get("message"),
            )
            != (outcome.ready.reason, outcome.ready.message)
            and outcome.ready.reason != "AwaitingSignature"
        ):
            events.append(("Warning", outcome.ready.reason, outcome.ready.message))
        outcome.events = events  # what on_outcome counts (mtls_certificate_failures_total) includes this Warning
        patch: dict[str, Any] = {"phase": outcome.phase, "conditions": conditions}
        patch.update(outcome.status)
        patch = {k: v for k, v in patch.items() if old.get(k) != v and not (v is None and k not in old)}
        updated = None
        if patch:
            updated = await self.kube.patch_status(meta["namespace"], meta["name"], patch)
        for event_type, reason, message in events:
            log.info("%s/%s: %s %s: %s", meta["namespace"], meta["name"], event_type, reason, message)
            await self.kube.post_event(body, event_type, reason, message)
        if self.on_outcome is not None:
            self.on_outcome(updated or body, outcome)
        return updated


def _certificates_in(secret: SecretView | None) -> list[x509.Certificate]:
    if secret is None or not secret.get("tls.crt"):
        return []
    try:
        return load_pem_bundle(secret.data["tls.crt"])
    except ValueError:
        return []


def _already_in_service(signed: SecretView, live: SecretView | None) -> bool:
    """The signed Secret still holds the certificate we already use: nothing new to import."""
    ours = _certificates_in(live)
    theirs = _certificates_in(signed)
    return bool(ours and theirs and ours[0] == theirs[0])


def _rejected(signed: SecretView, rejection: Rejection) -> str:
    return f"certificate in Secret {signed.name} rejected: {rejection.message}; the Secret in service is unchanged"


def _certificate_status(info: CertificateInfo, renew_at: datetime.datetime | None) -> dict[str, Any]:
    return {
        "notBefore": _ts(info.not_before),
        "notAfter": _ts(info.not_after),
        "renewalTime": _ts(renew_at) if renew_at else None,
        "serialNumber": info.serial_number,
        "issuer": info.issuer,
        "fingerprintSHA256": info.fingerprint_sha256,
    }


def _waiting(spec: CertificateSpec, trigger: Trigger, ready: Condition, phase: str | None = None) -> Outcome:
    """The phase while a new certificate is not in service yet."""
    if phase is None:
        if trigger.reason == "NoCertificate":
            phase = phases.AWAITING_SIGNATURE if spec.signer.kind == "manual" else phases.PENDING
        elif trigger.reason == "Expired":
            phase = phases.EXPIRED
        else:
            phase = phases.RENEWING
    if trigger.reason == "Expired":
        ready = Condition("Ready", "False", "Expired", f"{trigger.message}; {ready.message}")
    return Outcome(phase, ready)


def _after_issuance(
    spec: CertificateSpec, info: CertificateInfo, renew_at: datetime.datetime, now: datetime.datetime
) -> datetime.datetime | None:
    """When to look again after putting a certificate in service.

    A hand-signed certificate that arrives already inside its renewal window (the partner signed it for less than
    renewBefore) must start its renewal now, not at the next expiry threshold days later. An automatic signer is
    not woken at once: a CA that can only sign short certificates would otherwise re-issue in a loop.
    """
    if renew_at <= now and spec.signer.kind == "manual" and not spec.outbound:
        return now
    return next_wakeup(info, renew_at, now)


def _add_renewal_state(
    outcome: Outcome,
    status: Mapping[str, Any],
    trigger: Trigger | None,
    current: CertificateInfo | None,
    now: datetime.datetime,
) -> None:
    """RenewalDue condition, and one Warning per renewal start and per 14/7/3/1-days-left threshold."""
    if current is None or (outcome.phase == phases.READY and trigger is not None):
        outcome.renewal_due = Condition("RenewalDue", "False", "NotDue", "no renewal in progress")
        outcome.status["expiryWarningDays"] = None
        return
    due = trigger is not None and trigger.reason in ("RenewalDue", "Expired")
    if not due:
        outcome.renewal_due = Condition("RenewalDue", "False", "NotDue", "no renewal in progress")
        outcome.status["expiryWarningDays"] = None
        return
    assert trigger is not None
    outcome.renewal_due = Condition("RenewalDue", "True", trigger.reason, trigger.message)
    threshold = expiry_warning_threshold(current.not_after, now)
    marker = threshold if threshold is not None else 30
    if trigger.reason == "Expired":
        marker = 0
    if status.get("expiryWarningDays") != marker:
        action = "new CSR published" if outcome.status.get("csr") else "re-issuing"
        event_reason = "Expired" if marker == 0 else "RenewalDue"
        outcome.events.append(("Warning", event_reason, f"{trigger.message}; {action}"))
        outcome.status["expiryWarningDays"] = marker
