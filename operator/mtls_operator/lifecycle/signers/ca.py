"""Signer `ca`: our own CA keypair, in a Secret (`kubectl create secret tls`), signs at once."""

from __future__ import annotations

import datetime
import hashlib
from collections import OrderedDict

from cryptography import x509

from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.names import TLS_CRT, TLS_KEY
from mtls_operator.kube.objects import SecretView
from mtls_operator.lifecycle.attempt import Attempt, Issued, Rejected, SignResult
from mtls_operator.lifecycle.onbehalf import unreadable
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.trigger import Trigger, TriggerReason
from mtls_operator.lifecycle.signers.base import SignerBase, SignerContext
from mtls_operator.pki.certificates import load_pem_bundle, to_pem
from mtls_operator.pki.csr import build_csr
from mtls_operator.pki.keys import PrivateKey
from mtls_operator.pki.pathvalidation import path_problem
from mtls_operator.pki.signing import CertificateAuthority, ca_validity_problem, load_ca, sign_csr
from mtls_operator.pki.verify import Verified

CA_CACHE_SIZE = 64


class CALoader:
    """The CA of a Secret, parsed off the loop once per content (every CA-signed reconcile needs it)."""

    def __init__(self, ctx: SignerContext) -> None:
        self.ctx = ctx
        self._cas: OrderedDict[bytes, CertificateAuthority] = OrderedDict()

    async def load(self, a: Attempt) -> tuple[CertificateAuthority, bytes] | Rejected:
        name = a.spec.signer.secret_name
        assert name is not None
        refused = await unreadable(self.ctx.access, a.spec, name, "spec.signer.ca.secretName", a.now)
        if refused is not None:
            return refused
        return await self.load_from(a.spec.namespace, name, a.now, f"CA Secret {name}")

    async def load_from(
        self, namespace: str, name: str, now: datetime.datetime, label: str
    ) -> tuple[CertificateAuthority, bytes] | Rejected:
        """The CA of Secret namespace/name, checked for use at `now`; `label` names it in messages."""
        secret = await self.ctx.kube.get_secret(namespace, name)
        if secret is None:
            return Rejected("CANotFound", f"{label} does not exist", phase=phases.PENDING)
        try:
            ca = await self._parse(secret)
        except ValueError as exc:
            return Rejected("CAInvalid", f"{label}: {exc}", phase=phases.FAILED)
        problem = ca_validity_problem(ca, now)
        if problem is not None:
            return Rejected("CAInvalid", f"{label}: {problem}", phase=phases.FAILED)
        return ca, to_pem([ca.certificate])

    async def _parse(self, secret: SecretView) -> CertificateAuthority:
        digest = hashlib.sha256((secret.get(TLS_CRT) or b"") + b"\0" + (secret.get(TLS_KEY) or b"")).digest()
        ca = self._cas.get(digest)
        if ca is None:
            ca = await self.ctx.cpu.run(load_ca, secret.get(TLS_CRT), secret.get(TLS_KEY))
            self._cas[digest] = ca
            while len(self._cas) > CA_CACHE_SIZE:
                self._cas.popitem(last=False)
        return ca


async def sign_with(
    ctx: SignerContext,
    a: Attempt,
    csr: x509.CertificateSigningRequest,
    ca: CertificateAuthority,
    ca_pem: bytes,
    pool: CpuPool | None = None,
    key: PrivateKey | None = None,
    crl_url: str | None = None,
) -> Verified | Rejected:
    """`pool`: where the signature runs (a token-held CA key has its own); default the CPU pool.

    What we issue is judged as a partner's answer is, against the CA we publish, before it goes into service: with
    `key` (our own CSR's key) by OpenSSL in a handshake; without (a partner's CSR) by every rule that needs no key.
    """
    leaf = await (pool or ctx.cpu).run(sign_csr, csr, ca, a.spec.duration, a.now, crl_url)
    anchors = load_pem_bundle(ca_pem)
    problem = await ctx.cpu.run(path_problem, [leaf], anchors, key, a.now, lambda _cert: "")
    if problem is not None:
        return Rejected("CAInvalid", f"the certificate just issued would be refused by servers: {problem.message}",
                        phase=phases.FAILED)  # fmt: skip
    return Verified(chain=[leaf], ca_certificates=anchors)


class CASigner(SignerBase):
    def __init__(self, ctx: SignerContext, cas: CALoader) -> None:
        super().__init__(ctx)
        self.cas = cas

    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        loaded = await self.cas.load(a)  # before any key work: a missing CA wastes none
        if isinstance(loaded, Rejected):
            return loaded
        ca, ca_pem = loaded
        spec = a.spec
        pending = await self.ctx.keys.pending_key(a, trigger.reason != TriggerReason.NO_CERTIFICATE, persist=False)
        csr = x509.load_pem_x509_csr(await self.ctx.cpu.run(build_csr, pending.key, spec.subject, spec.dns_names))
        verified = await sign_with(self.ctx, a, csr, ca, ca_pem, key=pending.key)
        if isinstance(verified, Rejected):
            return verified
        return Issued(key=pending, source=f"CA Secret {spec.signer.secret_name}", verified=verified)
