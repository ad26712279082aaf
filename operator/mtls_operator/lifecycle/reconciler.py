"""One reconcile of one MtlsCertificate: the certificate's lifecycle, whichever signer signs it.

read → trigger (policy.trigger) → ask the signer (signers/, which asks keystore.py for the key) → verify →
put in service (one write of the live Secret) → status and Events. Level-based like a controller-runtime
reconciler: the same inputs give the same writes, so running it again (after a restart, a watch event or a timer)
is always safe. CPU work runs in a thread pool; `cryptography` releases the GIL, so the loop keeps serving.

Over 300 lines on purpose: it is the one sequence of a certificate's life, read top to bottom; the pure parts
(conditions, status fields, wake-ups) live in outcomes.py, the decisions in policy/.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509

from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.names import CA_CRT, OPAQUE_SECRET, TLS_CRT, TLS_KEY, TLS_SECRET
from mtls_operator.api.spec import CertificateSpec, parse_spec
from mtls_operator.api.status import ConditionType, find_condition, parse_time, utcnow
from mtls_operator.api.status import format_time as timestamp
from mtls_operator.hsm.token import TokenKeys
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.objects import Conflict, Owner, SecretView
from mtls_operator.lifecycle.accessreviews import REVIEW_TTL, AccessReviews
from mtls_operator.lifecycle.attempt import (
    Attempt,
    Deferred,
    EventTuple,
    Issued,
    Outcome,
    PendingKey,
    Rejected,
    SignResult,
    Waiting,
    owner_of,
)
from mtls_operator.lifecycle.attempt import (
    ownership as secret_ownership_of,
)
from mtls_operator.lifecycle.issuers import IssuerDirectory
from mtls_operator.lifecycle.javakeystores import JavaKeystores
from mtls_operator.lifecycle.keystore import KeyStore, SecretInTheWay
from mtls_operator.lifecycle.outcomes import (
    acknowledge_renewal_request,
    add_renewal_state,
    after_issuance,
    certificate_status,
    chain_validity,
    names_warning,
    ready_condition,
    store_problem,
    waiting,
)
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.floors import Floors, below_floor, issue_not_before, rapid_count
from mtls_operator.lifecycle.policy.keymanager import LIVE
from mtls_operator.lifecycle.policy.ownership import ADOPTABLE, FOREIGN
from mtls_operator.lifecycle.policy.readiness import Condition, merge_conditions
from mtls_operator.lifecycle.policy.revocation import REVOKED
from mtls_operator.lifecycle.policy.trigger import (
    Trigger,
    TriggerReason,
    issuance_trigger,
    next_wakeup,
    renewal_time,
    requested_renewal,
)
from mtls_operator.lifecycle.signers import Signer, SignerContext, build_signers, signer_kind
from mtls_operator.lifecycle.signers.ca import CALoader
from mtls_operator.lifecycle.signers.issuerca import IssuerCALoader
from mtls_operator.pki.certificates import (
    CertificateInfo,
    describe_certificate,
    pem_certificates,
    to_pem,
)
from mtls_operator.pki.csr import certifies_csr
from mtls_operator.pki.expiry import chain_expiry, chain_expiry_of
from mtls_operator.pki.keys import key_spec_of
from mtls_operator.pki.verify import Verified, verify_signed_certificate

log = logging.getLogger(__name__)

SECRET_IN_THE_WAY_RETRY = datetime.timedelta(minutes=5)  # a foreign Secret is removed by a person, not in a second
# Verifying a partner's answer takes milliseconds (the GIL released inside OpenSSL); key generation up to a second
# per RSA-4096 key. Verification gets its own threads so an import is never queued behind a burst of key generation.
VERIFY_THREADS = 2
CLOCK_TRIGGERS = (TriggerReason.RENEWAL_DUE, TriggerReason.EXPIRED)
ISSUANCE_RATE_LIMITED = "IssuanceRateLimited"  # the condition reason while policy.floors delays an issuance

__all__ = ["Attempt", "Outcome", "PendingKey", "Reconciler"]


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
        kubernetes_signer: bool = True,
        kubernetes_signer_names: tuple[str, ...] = (),
        issuers: IssuerDirectory | None = None,
        tokens: TokenKeys | None = None,
        floors: Floors | None = None,
        use_review_ttl: datetime.timedelta = REVIEW_TTL,
        require_requester: bool = False,
    ) -> None:
        self.kube = kube
        self.floors = floors or Floors(datetime.timedelta(0), datetime.timedelta(0))
        self.clock = clock
        self.on_outcome = on_outcome
        cpu = CpuPool(cpu_threads, released_slot)
        self.keys = KeyStore(kube, cpu, on_key_generated)
        self.verifier = CpuPool(VERIFY_THREADS, released_slot)
        self.context = SignerContext(
            kube=kube,
            keys=self.keys,
            cpu=cpu,
            clock=clock,
            issuers=issuers,
            kubernetes_signer_names=kubernetes_signer_names,
            access=AccessReviews(
                kube,
                clock,
                use_review_ttl,
                believed=issuers.requester_records_believed if issuers else lambda: False,
                required=require_requester,
            ),
        )
        self.stores = JavaKeystores(kube, cpu, self.context.access)
        # One CA cache and one set of token sessions for the signers and the issuers' status (runtime.controller).
        self.issuer_cas = IssuerCALoader(CALoader(self.context), tokens or TokenKeys(()))
        self.signers = build_signers(self.context, self.issuer_cas)
        if not kubernetes_signer:
            # Its RBAC (cluster-scoped CertificateSigningRequests) is granted only when enabled.
            del self.signers["kubernetes"]

    def close(self) -> None:
        """At stop: the CPU pools drop queued work; every token is logged out of."""
        self.context.cpu.close()
        self.verifier.close()
        self.issuer_cas.close()

    async def reconcile(self, body: Mapping[str, Any]) -> tuple[dict[str, Any] | None, datetime.datetime | None]:
        """Returns (the updated object or None, when to look again by the clock alone)."""
        now = self.clock()
        try:
            spec = parse_spec(body)
        except (ValueError, KeyError, TypeError) as exc:
            outcome = Outcome(phases.FAILED, Condition(ConditionType.READY, "False", "InvalidSpec", str(exc)))
            return await self.apply(body, outcome, now), None
        try:
            outcome = await self._decide(body, spec, now)
        except Conflict as exc:
            # Lost a race with another writer: decide again from fresh reads, soon.
            log.info("conflict on %s/%s: %s; retrying", spec.namespace, spec.name, exc)
            return None, now + datetime.timedelta(seconds=1)
        except SecretInTheWay as exc:
            # Not a race: someone else's Secret. Named on the object (a Warning with it), looked at again on any
            # change of the Secrets, or after SECRET_IN_THE_WAY_RETRY.
            outcome = Outcome(phases.FAILED, Condition(ConditionType.READY, "False", "SecretConflict", str(exc)))
            return await self.apply(body, outcome, self.clock()), now + SECRET_IN_THE_WAY_RETRY
        # Conditions are stamped when they are written: key generation and signing can take seconds under load.
        return await self.apply(body, outcome, self.clock()), outcome.wake_at

    async def _decide(self, body: Mapping[str, Any], spec: CertificateSpec, now: datetime.datetime) -> Outcome:
        status = body.get("status") or {}
        live, adopted, problem = await self._claim_live_secret(body, spec)
        if problem is not None:
            return Outcome(phases.FAILED, Condition(ConditionType.READY, "False", "SecretConflict", problem))
        a = Attempt(body=body, spec=spec, status=status, live=live, now=now)
        in_service = pem_certificates(live.get(TLS_CRT) if live else None)  # parsed once for all below
        leaf = in_service[0] if in_service else None
        current = describe_certificate(leaf) if leaf else None
        trigger = issuance_trigger(
            current,
            key_spec_of(leaf.public_key()) if leaf else None,  # type: ignore[arg-type]
            common_name=spec.subject.common_name,
            wanted_key=None if spec.outbound else spec.key,
            renew_before=spec.renew_before,
            uid=spec.uid,
            now=now,
        )
        if trigger is None and leaf is not None and spec.partner_csr and not certifies_csr(leaf, spec.partner_csr):
            # The partner sent a new CSR (new key): sign it now, not at the next renewal.
            trigger = Trigger(
                TriggerReason.CSR_CHANGED, "spec.csr asks for another key than the certificate in service"
            )
        if current is not None and (trigger is None or trigger.reason in CLOCK_TRIGGERS):
            # A person's request wins over the clock's: it is never rate-limited (policy.floors).
            asked = requested_renewal(spec.renewal_requested, status.get("lastRenewalRequest"), current.not_before)
            trigger = asked or trigger
        renew_at = renewal_time(current.not_before, current.not_after, spec.renew_before, spec.uid) if current else None
        chain = chain_expiry_of(in_service, live.get(CA_CRT)) if live is not None and current else None
        base = certificate_status(current, renew_at, chain) if current is not None else {}
        not_before = None
        if trigger is None:
            assert current is not None
            assert leaf is not None
            outcome = await self._in_service(a, leaf, current, base)
        else:
            held = self._held(a, trigger, now)
            if isinstance(held, datetime.datetime):
                not_before = held
                message = f"{trigger.message}; issuance rate limit: re-issued often lately, next at {timestamp(held)}"
                outcome = await self._settle(a, Waiting(ISSUANCE_RATE_LIMITED, message), trigger)
            else:
                outcome = await (self._settle(a, held, trigger) if held is not None else self._issue(a, trigger))
            if outcome.phase != phases.READY:
                outcome.status = {**base, **outcome.status}
        if outcome.phase != phases.READY or trigger is None:
            # A replacement's own instant (Deferred), or when a refused issuance asks again (Rejected.retry_at)
            deferred = outcome.wake_at
            wakes = [w for w in (next_wakeup(current, renew_at, now), deferred) if w is not None]
            outcome.wake_at = not_before or min(wakes, default=None)
        add_renewal_state(outcome, status, trigger, current, now)
        if current is not None:
            outcome.chain_valid = chain_validity(current, chain, now)
        acknowledge_renewal_request(outcome, spec, status, trigger)
        outcome.events = adopted + outcome.events
        return outcome

    def _held(self, a: Attempt, trigger: Trigger, now: datetime.datetime) -> Rejected | datetime.datetime | None:
        """Whether an issuance must not happen now: below the platform's floors (a refusal), or too soon after the
        last ones (when it may) — policy.floors."""
        below = below_floor(a.spec.duration, a.spec.renew_before, self.floors)
        if below is not None:
            return Rejected(below.reason, below.message, phase=phases.FAILED if a.live is None else None)
        rapid = int(a.status.get("rapidIssuances") or 0)
        last = parse_time(a.status.get("lastIssuedTime"))
        not_before = issue_not_before(trigger.reason, last, rapid, self.floors)
        return not_before if not_before is not None and now < not_before else None

    async def _claim_live_secret(
        self, body: Mapping[str, Any], spec: CertificateSpec
    ) -> tuple[SecretView | None, list[EventTuple], str | None]:
        """(the live Secret, Events, a conflict). Ours: used. Retained from an earlier object of this name: adopted
        when its content fits the spec. Anyone else's: never touched."""
        live = await self.kube.get_secret(spec.namespace, spec.secret_name)
        if live is None:
            return None, [], None
        ownership = secret_ownership_of(live, spec)
        if ownership == FOREIGN:
            return (
                live,
                [],
                (
                    f"Secret {spec.secret_name} exists and is not managed by this MtlsCertificate; "
                    "delete it or choose another spec.secretName"
                ),
            )
        if ownership == ADOPTABLE:
            problem = await self.keys.adoption_problem(spec, live)
            if problem is not None:
                return live, [], problem
            live = await self.kube.replace_secret_data(live, None, owner=owner_of(spec))
            adopted = (f"took over the retained Secret {spec.secret_name}: its key and certificate fit this spec, "
                       "so nothing is generated again")  # fmt: skip
            return live, [("Normal", "Adopted", adopted)], None
        return live, [], None

    def _signer(self, spec: CertificateSpec) -> Signer | None:
        return self.signers.get(signer_kind(spec))

    async def _in_service(
        self, a: Attempt, leaf: x509.Certificate, current: CertificateInfo, base: dict[str, Any]
    ) -> Outcome:
        """The certificate in service is good; a signer may still offer a newer one for the same key."""
        ready = Outcome(
            phases.READY,
            ready_condition(a.spec, leaf, current),
            status={**base, "csr": None, "csrPublishedTime": None, "certificateSigningRequest": None},
        )
        if a.status.get("phase") == phases.RENEWING or a.status.get("csr"):
            await self.keys.drop_next_key_in_service(a)  # a crash between switching and cleaning up left it
        signer = self._signer(a.spec)
        offered = await signer.replacement(a) if signer is not None else None
        if offered is None or isinstance(offered, Deferred):
            await self._keep_stores_current(a, ready)
            if offered is not None:
                ready.wake_at = offered.at  # _decide keeps the earlier of this and the renewal
            return ready
        trigger = (offered.trigger if isinstance(offered, Issued) else None) or Trigger(TriggerReason.REPLACED, "")
        settled = await self._settle(a, offered, trigger)
        if settled.phase == phases.READY:
            return settled
        ready.ready = settled.ready  # a bad replacement raises the condition; the one in service keeps serving
        if isinstance(offered, Rejected) and offered.reason == REVOKED:
            ready.phase = phases.FAILED  # ... unless it is revoked: then it no longer serves
        return ready

    async def _keep_stores_current(self, a: Attempt, ready: Outcome) -> None:
        """spec.keystores turned on, off or changed, or its password changed, for the certificate in service."""
        assert a.live is not None
        pem = {k: a.live.data.get(k) or b"" for k in (TLS_KEY, TLS_CRT, CA_CRT)}
        update = await self.stores.update_for(a.spec, pem, a.live)
        if update:
            await self.kube.replace_secret_data(a.live, update.data, annotations=update.annotations)
        if update.problem:
            ready.ready = store_problem(update.problem)

    async def _issue(self, a: Attempt, trigger: Trigger) -> Outcome:
        """A new certificate is needed: ask the signer, then verify and put in service what it returns."""
        signer = self._signer(a.spec)
        if signer is None:
            result: SignResult = Rejected(
                "SignerNotEnabled",
                "the kubernetes signer is off in this operator: start it with --kubernetes-signer "
                "(Helm: signers.kubernetes.enabled=true, which also grants its RBAC)",
                phase=phases.FAILED,
            )
        else:
            result = await signer.sign(a, trigger)
        return await self._settle(a, result, trigger)

    async def _settle(self, a: Attempt, result: SignResult, trigger: Trigger) -> Outcome:
        if isinstance(result, Issued):
            verified = result.verified or await self._verify(a, result)
            if isinstance(verified, Verified):
                outcome = await self._put_in_service(a, result.key, verified, trigger, result.issuer)
                ignored = [("Warning", "PrivateKeyIgnored", f"{result.source}: {note}") for note in verified.notes]
                outcome.events = result.events + outcome.events + ignored
                return outcome
            result = verified
        if isinstance(result, Waiting):
            serving = trigger.reason not in (TriggerReason.NO_CERTIFICATE, TriggerReason.EXPIRED)
            ready = Condition(ConditionType.READY, "True" if serving else "False", result.reason, result.message)
            outcome = waiting(a.spec, trigger, ready)
        else:
            outcome = waiting(
                a.spec, trigger, Condition(ConditionType.READY, "False", result.reason, result.message), result.phase
            )
            outcome.wake_at = result.retry_at
        outcome.status.update(result.status)
        outcome.events = result.events + outcome.events
        return outcome

    async def _verify(self, a: Attempt, issued: Issued) -> Verified | Rejected:
        """Every check a certificate from outside must pass before it goes into service: parsing, sorting and a
        real handshake in memory (milliseconds of CPU, with the GIL released inside OpenSSL), off the event loop."""
        assert issued.key is not None
        result = await self.verifier.run(
            verify_signed_certificate,
            issued.certificate_pem,
            issued.ca_pem,
            issued.key.key,
            a.spec.subject.common_name,
            a.now,
        )
        if isinstance(result, Verified):
            return result
        message = f"certificate in {issued.source} rejected: {result.message}; the Secret in service is unchanged"
        return Rejected(result.reason, message, status=issued.status, events=issued.events)

    async def _put_in_service(
        self, a: Attempt, pending: PendingKey | None, verified: Verified, trigger: Trigger, issuer: str | None = None
    ) -> Outcome:
        """One atomic write of key + certificate + CA into the live Secret, then drop the next-key Secret.
        `issuer`: "<kind>/<name>" of our issuer that signed it, for status.issuedBy (the revocations' ledger)."""
        body, spec, live = a.body, a.spec, a.live
        data: dict[str, bytes | None] = {
            TLS_KEY: pending.pem if pending else b"",
            TLS_CRT: to_pem(verified.chain),
            CA_CRT: to_pem(verified.ca_certificates),
        }
        if (pending is None and live is None) or (live is not None and live.type != TLS_SECRET):
            data.pop(TLS_KEY)
        # The Java stores are made from these very bytes and go in the same write: never out of step.
        stores = await self.stores.update_for(spec, {k: v for k, v in data.items() if v is not None}, live)
        owner, data = owner_of(spec), data | stores.data
        if live is None:
            secret_type = TLS_SECRET if pending else OPAQUE_SECRET
            await self.kube.create_secret(owner, spec.secret_name, secret_type, data, stores.annotations)
        else:
            await self.kube.replace_secret_data(live, data, owner=owner, annotations=stores.annotations)
        if pending is not None and pending.location != LIVE and pending.stored:
            await self.kube.delete_secret(spec.namespace, spec.next_secret_name)
        # Stamped when it happened: key generation and signing before this write can take seconds under load.
        now = self.clock()
        info = describe_certificate(verified.leaf)
        status = body.get("status") or {}
        revision = int(status.get("revision") or 0) + 1
        renew_at = renewal_time(info.not_before, info.not_after, spec.renew_before, spec.uid)
        renewed = trigger.reason != TriggerReason.NO_CERTIFICATE
        message = (
            f"certificate serial {info.serial_number} issued by {info.issuer}, valid until {timestamp(info.not_after)}"
        )
        if trigger.reason == TriggerReason.ISSUER_ROTATED:
            message = f"{trigger.message}: {message}"
        names = names_warning(spec, verified.leaf)
        warnings = [("Warning", "NamesNotCovered", names)] if names else []
        return Outcome(
            phases.READY,
            store_problem(stores.problem) if stores.problem else ready_condition(spec, verified.leaf, info),
            status={
                **certificate_status(info, renew_at, chain_expiry(data[TLS_CRT], data[CA_CRT])),
                "revision": revision,
                "csr": None,
                "csrPublishedTime": None,
                "certificateSigningRequest": None,
                "lastIssuedTime": timestamp(now),
                "lastRenewalRequest": spec.renewal_requested or status.get("lastRenewalRequest"),
                "renewalRequest": None,
                "issuedBy": {"issuer": issuer, "serialNumber": info.serial_number} if issuer else None,
                "rapidIssuances": rapid_count(
                    parse_time(status.get("lastIssuedTime")), int(status.get("rapidIssuances") or 0), now, self.floors
                ),
            },
            events=[("Normal", "Renewed" if renewed else "Issued", message), *warnings],
            wake_at=after_issuance(spec, info, renew_at, now),
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
        wanted = [outcome.ready] + [c for c in (outcome.renewal_due, outcome.chain_valid) if c is not None]
        conditions = merge_conditions(old.get("conditions") or [], wanted, int(meta.get("generation", 0)), now)
        old_ready = find_condition(old)
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
        if self.on_outcome is not None:  # before the Events' round trips: the metrics follow the status at once
            self.on_outcome(updated or body, outcome)
        for event_type, reason, message in events:
            log.info("%s/%s: %s %s: %s", meta["namespace"], meta["name"], event_type, reason, message)
            await self.kube.post_event(Owner.of(body), event_type, reason, message)
        return updated
