"""Signer `manual`: a person carries the CSR to the partner and drops the signed certificate into a Secret.

The CSR is published in status.csr (derived from the stored key, so it is byte-identical when rebuilt), and the
signed certificate is read from `signer.manual.signedSecretName` (default `<name>-signed`), however long it takes.
"""

from __future__ import annotations

from mtls_operator.api.names import CA_CRT, TLS_CRT, TLS_KEY
from mtls_operator.api.status import format_time as timestamp
from mtls_operator.kube.objects import SecretView
from mtls_operator.lifecycle.attempt import Attempt, Issued, PendingKey, Rejected, SignResult, Waiting
from mtls_operator.lifecycle.onbehalf import unreadable
from mtls_operator.lifecycle.policy.keymanager import LIVE
from mtls_operator.lifecycle.policy.trigger import Trigger, TriggerReason
from mtls_operator.lifecycle.signers.base import SignerBase
from mtls_operator.pki.bundle import certificates_in
from mtls_operator.pki.certificates import first_certificate
from mtls_operator.pki.csr import build_csr, csr_matches
from mtls_operator.pki.keys import key_spec_of


class ManualSigner(SignerBase):
    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        spec = a.spec
        signed = await self._signed_secret(a)
        # Its content is used only when there is an upload that is not in service yet: then, and only then, the
        # requester must be allowed to read it (onbehalf). Asking RBAC at every look would be one review per
        # certificate per minute at a resync of thousands.
        if signed is not None and not _already_in_service(signed, a.live):
            refused = await self._unreadable(a)
            if refused is not None:
                return refused
        if trigger.reason == TriggerReason.NO_CERTIFICATE and signed is not None and signed.get(TLS_KEY):
            return await self._bring_your_own(a, signed)
        pending = await self.ctx.keys.pending_key(a, trigger.reason != TriggerReason.NO_CERTIFICATE, persist=True)
        csr_pem = a.status.get("csr")
        published_at = a.status.get("csrPublishedTime")
        events = []
        if not csr_matches(csr_pem, pending.key, spec.subject, spec.dns_names):
            csr_pem = (await self.ctx.cpu.run(build_csr, pending.key, spec.subject, spec.dns_names)).decode()
            published_at = timestamp(self.ctx.clock())  # after key generation, which can take seconds
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
        if signed is not None and not _already_in_service(signed, a.live):
            return Issued(
                key=pending,
                source=f"Secret {signed.name}",
                certificate_pem=signed.get(TLS_CRT),
                ca_pem=signed.get(CA_CRT),
                status=request_status,
                events=events,
            )
        return Waiting(
            "AwaitingSignature",
            f"CSR published in status.csr since {published_at}; waiting for the signed certificate "
            f"in Secret {spec.signer.secret_name}",
            status=request_status,
            events=events,
        )

    async def _bring_your_own(self, a: Attempt, signed: SecretView) -> SignResult:
        """A key and certificate made before the operator (`kubectl mtls import --key`), for a certificate with
        none in service yet: the pair goes into service after the same checks, and is renewed like any other."""
        key, unreadable = await self.ctx.keys.stored_key(signed)
        if key is None or unreadable:
            return Rejected("InvalidKey", f"tls.key in Secret {signed.name} is not a readable unencrypted private key")
        if key_spec_of(key) != a.spec.key:
            return Rejected(
                "KeySpecMismatch",
                f"the key in Secret {signed.name} is {key_spec_of(key)} but spec.privateKey asks for {a.spec.key}; "
                "set spec.privateKey to match it",
            )
        return Issued(
            key=PendingKey(key, signed.data[TLS_KEY], LIVE),
            source=f"Secret {signed.name}",
            certificate_pem=signed.get(TLS_CRT),
            ca_pem=signed.get(CA_CRT),
            status={"csr": None, "csrPublishedTime": None},
        )

    async def replacement(self, a: Attempt) -> Issued | Rejected | None:
        """A new hand-signed certificate for the key in service (e.g. the partner re-signed with a longer
        validity) replaces the current one once verified; a bad one only raises a condition and an Event."""
        if a.spec.outbound or a.live is None:
            return None
        signed = await self._signed_secret(a)
        if signed is None or _already_in_service(signed, a.live):
            return None
        refused = await self._unreadable(a)
        if refused is not None:
            return refused
        key, _ = await self.ctx.keys.stored_key(a.live)
        if key is None:
            return None
        return Issued(
            key=PendingKey(key, a.live.data[TLS_KEY], LIVE),
            source=f"Secret {signed.name}",
            certificate_pem=signed.get(TLS_CRT),
            ca_pem=signed.get(CA_CRT),
        )

    async def _unreadable(self, a: Attempt) -> Rejected | None:
        assert a.spec.signer.secret_name is not None
        field = "spec.signer.manual.signedSecretName"
        return await unreadable(self.ctx.access, a.spec, a.spec.signer.secret_name, field, a.now)

    async def _signed_secret(self, a: Attempt) -> SecretView | None:
        assert a.spec.signer.secret_name is not None
        return await self.ctx.kube.get_secret(a.spec.namespace, a.spec.signer.secret_name)


def _already_in_service(signed: SecretView, live: SecretView | None) -> bool:
    """The signed Secret still holds the certificate we already use: nothing new to import. The partner's files
    may be DER or PKCS#7 and in any order, so look for our leaf among all of their certificates."""
    ours = first_certificate(live.get(TLS_CRT) if live else None)
    if ours is None:
        return False
    return ours in certificates_in(signed.get(TLS_CRT)) or ours in certificates_in(signed.get(CA_CRT))
