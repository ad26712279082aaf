"""Signer `manual`: a person carries the CSR to the partner and drops the signed certificate into a Secret.

The CSR is published in status.csr (derived from the stored key, so it is byte-identical when rebuilt), and the
signed certificate is read from `signer.manual.signedSecretName` (default `<name>-signed`), however long it takes.
"""

from __future__ import annotations

from ..attempt import Attempt, Issued, PendingKey, Rejected, SignResult, Waiting, timestamp
from ..kube import SecretView
from ..pki.certificates import first_certificate
from ..pki.csr import build_csr, csr_matches
from ..policy.keymanager import LIVE
from ..policy.trigger import Trigger
from .base import SignerBase


class ManualSigner(SignerBase):
    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        spec = a.spec
        pending = await self.ctx.keys.pending_key(a, trigger.reason != "NoCertificate", persist=True)
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
        signed = await self._signed_secret(a)
        if signed is not None and not _already_in_service(signed, a.live):
            return Issued(
                key=pending,
                source=f"Secret {signed.name}",
                certificate_pem=signed.get("tls.crt"),
                ca_pem=signed.get("ca.crt"),
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

    async def replacement(self, a: Attempt) -> Issued | Rejected | None:
        """A new hand-signed certificate for the key in service (e.g. the partner re-signed with a longer
        validity) replaces the current one once verified; a bad one only raises a condition and an Event."""
        if a.spec.outbound or a.live is None:
            return None
        signed = await self._signed_secret(a)
        if signed is None or _already_in_service(signed, a.live):
            return None
        key, _ = await self.ctx.keys.stored_key(a.live)
        if key is None:
            return None
        return Issued(
            key=PendingKey(key, a.live.data["tls.key"], LIVE),
            source=f"Secret {signed.name}",
            certificate_pem=signed.get("tls.crt"),
            ca_pem=signed.get("ca.crt"),
        )

    async def _signed_secret(self, a: Attempt) -> SecretView | None:
        assert a.spec.signer.secret_name is not None
        return await self.ctx.kube.get_secret(a.spec.namespace, a.spec.signer.secret_name)


def _already_in_service(signed: SecretView, live: SecretView | None) -> bool:
    """The signed Secret still holds the certificate we already use: nothing new to import."""
    ours = first_certificate(live.get("tls.crt") if live else None)
    theirs = first_certificate(signed.get("tls.crt"))
    return ours is not None and theirs is not None and ours == theirs
