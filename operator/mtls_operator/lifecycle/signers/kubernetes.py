"""Signer `kubernetes`: a certificates.k8s.io/v1 CertificateSigningRequest, signed by a cluster signer.

The key is stored first (as for `manual`); the CSR object is named from namespace, name, revision and key, so a
restart or a lost status finds the same object again. Approval is a person's or a policy's job: the operator
never approves its own requests. A CSR object that vanishes before its certificate was read (the 24 h / 1 h
cleaner, or a person) is created again for the same stored key; a key is never regenerated for that reason.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from mtls_operator.api.spec import CertificateSpec
from mtls_operator.kube.objects import Refused
from mtls_operator.lifecycle.attempt import Attempt, Issued, Rejected, SignResult, Waiting
from mtls_operator.lifecycle.onbehalf import unreadable
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.signernames import signer_name_refusal
from mtls_operator.lifecycle.policy.trigger import Trigger, TriggerReason
from mtls_operator.lifecycle.signers.base import SignerBase
from mtls_operator.pki.csr import build_csr

MIN_EXPIRATION_SECONDS = 600  # the API's minimum
USAGES = ["digital signature", "key encipherment", "client auth"]


def request_name(spec: CertificateSpec, revision: int, key_pem: bytes) -> str:
    """Deterministic: the same certificate, revision and key always name the same CertificateSigningRequest."""
    digest = hashlib.sha256(f"{spec.namespace}/{spec.name}/{revision}\0".encode() + key_pem).hexdigest()[:10]
    suffix = f".r{revision}.{digest}"
    base = f"{spec.namespace}.{spec.name}"[: 253 - len(suffix)].rstrip(".-")
    return base + suffix


def expiration_seconds(spec: CertificateSpec) -> int:
    wanted = spec.signer.expiration_seconds or int(spec.duration.total_seconds())
    return max(MIN_EXPIRATION_SECONDS, wanted)


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type"): c for c in found if c.get("status", "True") == "True"}


class KubernetesSigner(SignerBase):
    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        spec = a.spec
        refusal = signer_name_refusal(spec.signer.signer_name or "", self.ctx.kubernetes_signer_names)
        if refusal is not None:  # before any key: nothing is generated for a request that will not be made
            return Rejected("SignerNameNotAllowed", refusal, phase=phases.FAILED)
        pending = await self.ctx.keys.pending_key(a, trigger.reason != TriggerReason.NO_CERTIFICATE, persist=True)
        revision = int(a.status.get("revision") or 0) + 1
        name = request_name(spec, revision, pending.pem)
        status = {"certificateSigningRequest": name}
        obj = await self.ctx.kube.get_csr(name)
        if obj is None:
            request = await self.ctx.cpu.run(build_csr, pending.key, spec.subject, spec.dns_names)
            try:
                await self.ctx.kube.create_csr(a.owner, name, self._csr_spec(spec, request))
            except Refused as exc:
                return Rejected(
                    "CSRRefused",
                    f"the apiserver refused CertificateSigningRequest {name} (HTTP {exc.status}): {exc.message}; "
                    "change what it names (the subject, spec.signer.kubernetes.signerName) or ask the cluster's "
                    "administrators; the key is kept for the next attempt",
                    phase=phases.FAILED,
                    status=status,
                )
            created = (
                "Normal",
                "CSRCreated",
                f"CertificateSigningRequest {name} created for signer {spec.signer.signer_name}; it needs "
                f"approval (kubectl certificate approve {name})",
            )
            return Waiting("AwaitingApproval", self._awaiting_approval(name), status=status, events=[created])
        conditions = _conditions(obj)
        for condition, reason in (("Denied", "CSRDenied"), ("Failed", "CSRFailed")):
            if condition in conditions:
                detail = conditions[condition]
                message = f"CertificateSigningRequest {name} was {condition.lower()}: {detail.get('reason', '')}"
                if detail.get("message"):
                    message += f": {detail['message']}"
                hint = f"; delete it (kubectl delete csr {name}) to request again with the same key"
                return Rejected(reason, message + hint, phase=phases.FAILED, status=status)
        certificate = (obj.get("status") or {}).get("certificate")
        if certificate:
            ca_pem = await self._ca_bundle(a)
            if isinstance(ca_pem, Rejected):
                ca_pem.status = status
                return ca_pem
            return Issued(
                key=pending,
                source=f"CertificateSigningRequest {name}",
                certificate_pem=base64.b64decode(certificate),
                ca_pem=ca_pem,
                status=status,
            )
        if "Approved" in conditions:
            return Waiting(
                "AwaitingCertificate",
                f"CertificateSigningRequest {name} is approved; waiting for signer {spec.signer.signer_name} "
                "to issue the certificate",
                status=status,
            )
        return Waiting("AwaitingApproval", self._awaiting_approval(name), status=status)

    @staticmethod
    def _awaiting_approval(name: str) -> str:
        return f"CertificateSigningRequest {name} waits for approval (kubectl certificate approve {name})"

    @staticmethod
    def _csr_spec(spec: CertificateSpec, request_pem: bytes) -> dict[str, Any]:
        return {
            "request": base64.b64encode(request_pem).decode(),
            "signerName": spec.signer.signer_name,
            "expirationSeconds": expiration_seconds(spec),
            "usages": USAGES,
        }

    async def _ca_bundle(self, a: Attempt) -> bytes | Rejected | None:
        """ca.crt from the reference the spec names (a ConfigMap or Secret key), or None when none is named."""
        ref = a.spec.signer.ca_from
        if ref is None:
            return None
        kind, name, key = ref
        if kind == "configMap":
            data = await self.ctx.kube.get_configmap_data(a.spec.namespace, name)
        else:
            refused = await unreadable(self.ctx.access, a.spec, name, "spec.signer.kubernetes.caFrom", a.now)
            if refused is not None:
                return refused
            secret = await self.ctx.kube.get_secret(a.spec.namespace, name)
            data = None if secret is None else {k: v.decode(errors="replace") for k, v in secret.data.items()}
        what = f"{'ConfigMap' if kind == 'configMap' else 'Secret'} {name}"
        if data is None:
            return Rejected(
                "CABundleNotFound", f"{what} (signer.kubernetes.caFrom) does not exist", phase=phases.PENDING
            )
        if not data.get(key):
            return Rejected("CABundleNotFound", f"{what} has no key {key!r} (signer.kubernetes.caFrom)")
        return data[key].encode()
