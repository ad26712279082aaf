"""Signer `issuerRef`: an MtlsIssuer or ClusterMtlsIssuer signs, under the policy its owner set.

Both directions: our own key and CSR, or a partner's spec.csr (only when the issuer allows partner CSRs). Before
anything is signed, the request is checked against the issuer's policy (policy.issuance); a violation names the
rule and the value and nothing is signed. While a certificate is in service, the same check reports a policy that
no longer fits it (nothing is revoked), and a certificate the issuer's current CA did not sign is re-issued at its
turn in the issuer's rotation spread (policy.carotation).

A certificate in service that the issuer revoked (an MtlsRevocation, policy.revocation) is never kept as if it were
good: for keyCompromise ours is re-issued at once with a new key; otherwise it is reported Revoked and re-issued
only when asked (`kubectl mtls renew`). A partner's key revoked for keyCompromise is never signed again.
"""

from __future__ import annotations

from cryptography import x509

from mtls_operator.api.issuer import parse_issuer
from mtls_operator.api.names import CA_CRT, CLUSTER_ISSUER_KIND, TLS_CRT
from mtls_operator.api.status import find_condition, parse_time
from mtls_operator.hsm.token import HsmUnavailable
from mtls_operator.lifecycle.attempt import Attempt, Deferred, Issued, Rejected, SignResult
from mtls_operator.lifecycle.issuers import ResolvedIssuer
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.carotation import PUBLISHED_RETRY, ca_move
from mtls_operator.lifecycle.policy.issuance import IssuanceRequest, Violation, narrowed, violations
from mtls_operator.lifecycle.policy.revocation import KEY_REVOKED, REVOKED, RevocationVerdict, after_revocation
from mtls_operator.lifecycle.policy.trigger import Trigger, TriggerReason
from mtls_operator.lifecycle.policy.useaccess import requester_needed, use_refusal
from mtls_operator.lifecycle.policy.usepolicy import USE_POLICY_MISSING, refusal_message
from mtls_operator.lifecycle.signers.base import SignerBase, SignerContext
from mtls_operator.lifecycle.signers.ca import sign_with
from mtls_operator.lifecycle.signers.issuerca import (
    HSM_UNAVAILABLE,
    PIN_NOT_FOUND,
    PIN_REFUSED,
    TOKEN_NOT_ALLOWED,
    IssuerCALoader,
)
from mtls_operator.pki.certificates import describe_certificate, first_certificate, issued_by, load_pem_bundle
from mtls_operator.pki.csr import CsrPolicy, build_csr, check_partner_csr, csr_dns_names, subject_fields
from mtls_operator.pki.keys import key_spec_of, same_public_key

# Format checks of a partner CSR before the issuer's key policy (which names its own rule) applies: any key the
# policy could allow passes this floor; the partner guide's RSA >= 2048 stays the floor.
CSR_FORMAT_FLOOR = CsrPolicy(algorithms=("RSA", "ECDSA"))
TOKEN_DOWN = (HSM_UNAVAILABLE, PIN_NOT_FOUND, PIN_REFUSED, TOKEN_NOT_ALLOWED)


class IssuerSigner(SignerBase):
    def __init__(self, ctx: SignerContext, cas: IssuerCALoader) -> None:
        super().__init__(ctx)
        self.cas = cas

    async def resolve(self, a: Attempt) -> ResolvedIssuer | Rejected:
        ref = a.spec.signer.issuer_ref
        assert ref is not None
        key = ref.key(a.spec.namespace)
        directory = self.ctx.issuers
        body = directory.find(key) if directory is not None else None
        if directory is None or body is None:
            return Rejected("IssuerNotFound", f"{key} does not exist (spec.signer.issuerRef)", phase=phases.PENDING)
        use_problem = directory.use_policy_problem() if key.kind == CLUSTER_ISSUER_KIND else None
        if use_problem is not None:
            return Rejected(USE_POLICY_MISSING, refusal_message(str(key), use_problem), phase=phases.PENDING)
        try:
            spec = parse_issuer(key.kind, body)
        except ValueError as exc:
            return Rejected("IssuerNotReady", f"{key} has an unusable spec: {exc}", phase=phases.PENDING)
        ready = find_condition(body.get("status") or {})
        if spec.pkcs11 is not None and ready.get("status") == "False" and ready.get("reason") in TOKEN_DOWN:
            # The issuer's probe found the token unable to sign: wait for it to say otherwise (its Ready change
            # re-queues this certificate) instead of generating a key for a signature that cannot be made.
            return Rejected("IssuerNotReady", f"{key}: {ready.get('message')}", phase=phases.PENDING)
        refused_pin = (body.get("status") or {}).get("pinRefused")
        loaded = await self.cas.load(spec, directory.ca_namespace(key), a.now, refused_pin=refused_pin)
        if isinstance(loaded, Rejected):
            return Rejected("IssuerNotReady", f"{key}: {loaded.message}", phase=phases.PENDING)
        fingerprint = describe_certificate(loaded.ca.certificate).fingerprint_sha256
        return ResolvedIssuer(spec, body.get("status") or {}, loaded.ca, loaded.ca_pem, fingerprint, loaded.pool)

    def check(
        self, a: Attempt, issuer: ResolvedIssuer
    ) -> tuple[x509.CertificateSigningRequest | None, Rejected | None]:
        """(the partner's CSR when outbound, a refusal): the request against the issuer's policy."""
        spec, policy = a.spec, issuer.spec.policy
        csr = None
        if spec.partner_csr is not None:
            csr, problem = check_partner_csr(spec.partner_csr, spec.subject.common_name, CSR_FORMAT_FLOOR)
            if problem is not None or csr is None:
                message = problem.message if problem else "the CSR cannot be signed"
                return None, Rejected("CSRRejected", message, phase=phases.FAILED)
            request = IssuanceRequest(
                namespace=spec.namespace,
                common_name=spec.subject.common_name,
                dns_names=csr_dns_names(csr),
                subject=subject_fields(csr.subject),
                duration=spec.duration,
                key=key_spec_of(csr.public_key()),  # type: ignore[arg-type]
                partner_csr=True,
            )
            key_policy = narrowed(policy.keys, spec.csr_policy if spec.csr_policy_given else None)
        else:
            subject = spec.subject
            request = IssuanceRequest(
                namespace=spec.namespace,
                common_name=subject.common_name,
                dns_names=spec.dns_names,
                subject={
                    "country": subject.country,
                    "organization": subject.organization,
                    "organizationalUnit": subject.organizational_unit,
                    "state": subject.state,
                    "locality": subject.locality,
                },
                duration=spec.duration,
                key=spec.key,
            )
            key_policy = policy.keys
        labels = self.ctx.issuers.namespace_labels(spec.namespace) if self.ctx.issuers is not None else None
        found = violations(request, policy, labels, key_policy)
        if found:
            return csr, Rejected("PolicyViolation", _violation_message(issuer, found), phase=phases.FAILED)
        return csr, None

    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        issuer = await self.resolve(a)
        if isinstance(issuer, Rejected):
            return issuer
        csr, refused = self.check(a, issuer)
        if refused is not None:
            return refused
        verdict = self._revocation_verdict(a, issuer, csr)
        if verdict is not None and verdict.refuse_key:
            return Rejected(KEY_REVOKED, verdict.message, phase=phases.FAILED)
        if verdict is not None and verdict.blocks(trigger.reason):
            return Rejected(REVOKED, verdict.message, phase=phases.FAILED)
        refusal = await self._use_refusal(a, issuer)
        if refusal is not None:
            return refusal
        fresh = verdict is not None and verdict.new_key
        return await self._issue(a, issuer, csr, trigger, fresh_key=fresh)

    async def _use_refusal(self, a: Attempt, issuer: ResolvedIssuer) -> Rejected | None:
        """policy.useaccess: a cluster issuer signs only for a requester RBAC lets use it (unless open to all)."""
        key = issuer.spec.key
        if not requester_needed(key.kind == CLUSTER_ISSUER_KIND, issuer.spec.policy.open_to_selected_namespaces):
            return None
        requester, access = a.spec.requester, self.ctx.access
        believed = access is not None and access.believed()
        allowed = None
        if requester is not None and believed and access is not None:
            allowed = await access.may_use_cluster_issuer(requester, key.name)
        refusal = use_refusal(str(key), requester, allowed, record_checked=believed)
        if refusal is None:
            return None
        # RBAC changes reach us by no watch: ask again once its answer is stale (a binding given back is seen then).
        retry = a.now + access.ttl if access is not None and requester is not None else None
        return Rejected(refusal.reason, refusal.message, phase=phases.PENDING, retry_at=retry)

    def _revocation_verdict(
        self, a: Attempt, issuer: ResolvedIssuer, csr: x509.CertificateSigningRequest | None
    ) -> RevocationVerdict | None:
        """What the revocation of the certificate in service (if it is revoked) means for this request."""
        leaf = first_certificate(a.live.get(TLS_CRT) if a.live else None)
        directory = self.ctx.issuers
        if leaf is None or directory is None:
            return None
        entry = directory.revoked(issuer.spec.key, leaf.serial_number)
        if entry is None:
            return None
        return after_revocation(entry, issuer.spec.key, partner_key=csr is not None, same_key=_same_key(leaf, csr))

    async def _issue(
        self,
        a: Attempt,
        issuer: ResolvedIssuer,
        csr: x509.CertificateSigningRequest | None,
        trigger: Trigger,
        *,
        fresh_key: bool = False,
    ) -> Issued | Rejected:
        spec, source = a.spec, str(issuer.spec.key)
        signed_by = f"{issuer.spec.key.kind}/{issuer.spec.key.name}"
        crl_url = issuer.spec.crl_url
        try:
            if csr is not None:  # a partner's CSR: the partner owns the key
                verified = await sign_with(self.ctx, a, csr, issuer.ca, issuer.ca_pem, issuer.pool, crl_url=crl_url)
                if isinstance(verified, Rejected):
                    return verified
                return Issued(key=None, source=source, verified=verified, trigger=trigger, issuer=signed_by)
            renewal = trigger.reason != TriggerReason.NO_CERTIFICATE
            pending = await self.ctx.keys.pending_key(a, renewal, persist=False, fresh=fresh_key)
            ours = x509.load_pem_x509_csr(await self.ctx.cpu.run(build_csr, pending.key, spec.subject, spec.dns_names))
            verified = await sign_with(
                self.ctx, a, ours, issuer.ca, issuer.ca_pem, issuer.pool, key=pending.key, crl_url=crl_url
            )
        except HsmUnavailable as exc:  # the token went away since resolve(): nothing was signed
            return Rejected("IssuerNotReady", f"{issuer.spec.key}: {exc}", phase=phases.PENDING)
        if isinstance(verified, Rejected):
            return verified
        return Issued(key=pending, source=source, verified=verified, trigger=trigger, issuer=signed_by)

    async def replacement(self, a: Attempt) -> Issued | Rejected | Deferred | None:
        issuer = await self.resolve(a)
        if isinstance(issuer, Rejected):
            return _reported(issuer)
        csr, refused = self.check(a, issuer)
        if refused is not None:
            return _reported(refused)
        verdict = self._revocation_verdict(a, issuer, csr)
        if verdict is not None:  # revoked: never kept in service as if it were good
            if verdict.reissue_now:
                refusal = await self._use_refusal(a, issuer)
                if refusal is not None:
                    return _reported(refusal)
                trigger = Trigger(TriggerReason.REVOKED, verdict.message)
                return await self._issue(a, issuer, csr, trigger, fresh_key=True)
            return Rejected(REVOKED, verdict.message, phase=phases.FAILED)
        leaf = first_certificate(a.live.get(TLS_CRT) if a.live else None)
        if leaf is None or issued_by(leaf, issuer.ca.certificate):
            return None
        move = ca_move(
            a.spec.uid,
            issuer.recorded_fingerprint,
            issuer.fingerprint,
            parse_time(issuer.rotation_started),
            issuer.spec.rotation_spread,
            a.now,
        )
        if not move.due:
            return Deferred(move.at, f"{issuer.spec.key} has a new CA; this certificate moves to it at its turn")
        configmap = a.spec.publish_ca_configmap
        if configmap and not await self._published(a.spec.namespace, configmap, issuer.fingerprint):
            return Deferred(a.now + PUBLISHED_RETRY, f"publishCA ConfigMap {configmap} does not carry the new CA yet")
        refusal = await self._use_refusal(a, issuer)
        if refusal is not None:
            return _reported(refusal)
        message = f"{issuer.spec.key} has a new CA (fingerprint {issuer.fingerprint}): re-issued by it"
        return await self._issue(a, issuer, csr, Trigger(TriggerReason.ISSUER_ROTATED, message))

    async def _published(self, namespace: str, configmap: str, fingerprint: str) -> bool:
        data = await self.ctx.kube.get_configmap_data(namespace, configmap) or {}
        try:
            bundle = load_pem_bundle(data.get(CA_CRT, "").encode())
        except ValueError:
            return False
        return any(describe_certificate(c).fingerprint_sha256 == fingerprint for c in bundle)


def _same_key(leaf: x509.Certificate, csr: x509.CertificateSigningRequest | None) -> bool:
    return csr is not None and same_public_key(leaf.public_key(), csr.public_key())  # type: ignore[arg-type]


def _violation_message(issuer: ResolvedIssuer, found: list[Violation]) -> str:
    return f"{issuer.spec.key} refuses to sign: " + "; ".join(str(v) for v in found)


def _reported(refused: Rejected) -> Rejected:
    """While a certificate is in service: the problem is reported, and the certificate keeps serving."""
    return Rejected(
        refused.reason,
        f"{refused.message}; the certificate in service is unchanged and keeps serving until it expires, "
        "but it will not be renewed until this is fixed",
        retry_at=refused.retry_at,
    )
