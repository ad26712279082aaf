"""Outbound: the partner is the client; our CA (signer `ca`) signs the partner's CSR from spec.csr.

What `openssl x509 -req -in partner.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -sha256` does, after
the checks of the partner's own guide (signature, RSA >= 2048, C/O/CN present, CN equal to spec.commonName).
"""

from __future__ import annotations

from mtls_operator.lifecycle.attempt import Attempt, Issued, Rejected, SignResult
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.trigger import Trigger
from mtls_operator.lifecycle.signers.base import SignerBase, SignerContext
from mtls_operator.lifecycle.signers.ca import CALoader, sign_with
from mtls_operator.pki.csr import check_partner_csr


class PartnerCSRSigner(SignerBase):
    def __init__(self, ctx: SignerContext, cas: CALoader) -> None:
        super().__init__(ctx)
        self.cas = cas

    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        spec = a.spec
        assert spec.partner_csr is not None
        csr, problem = check_partner_csr(spec.partner_csr, spec.subject.common_name, spec.csr_policy)
        if problem is not None or csr is None:
            message = problem.message if problem else "the CSR cannot be signed"
            return Rejected("CSRRejected", message, phase=phases.FAILED)
        loaded = await self.cas.load(a)
        if isinstance(loaded, Rejected):
            return loaded
        ca, ca_pem = loaded
        verified = await sign_with(self.ctx, a, csr, ca, ca_pem)
        if isinstance(verified, Rejected):
            return verified
        return Issued(key=None, source=f"CA Secret {spec.signer.secret_name}", verified=verified)
