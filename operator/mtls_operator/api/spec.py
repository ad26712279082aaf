"""The MtlsCertificate spec as typed Python values (parsed from the custom resource's body)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtls_operator.api.names import (
    CLUSTER_ISSUER_KIND,
    ISSUER_KIND,
    RENEW_ANNOTATION,
    next_secret_name,
    signed_secret_name,
)
from mtls_operator.api.refs import IssuerRef
from mtls_operator.api.requester import Requester, requester_of
from mtls_operator.pki.csr import CsrPolicy, Subject
from mtls_operator.pki.keys import KeySpec

DEFAULT_DURATION = datetime.timedelta(hours=8760)  # the CRD's default (a year)
DEFAULT_RENEW_BEFORE = datetime.timedelta(hours=720)  # the partner's rule: renew at least 30 days before expiry
DEFAULT_KEY_SIZES = {"RSA": 2048, "ECDSA": 256}
# Go's time.ParseDuration syntax, which the CRD's CEL rules also accept.
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> datetime.timedelta:
    """Parses '8760h', '1h50m', '90s' like Go's time.ParseDuration. Raises ValueError."""
    if not text or _DURATION_PART.sub("", text) != "":
        raise ValueError(f"invalid duration {text!r} (use Go syntax such as 8760h or 1h30m)")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return datetime.timedelta(seconds=seconds)


@dataclass(frozen=True)
class SignerSpec:
    """spec.signer as a record (the signers themselves are lifecycle.signers: the Signer protocol)."""

    kind: str  # "manual" | "ca" | "kubernetes" | "issuer"
    secret_name: str | None = None  # manual: the signed Secret; ca: the CA Secret
    signer_name: str | None = None  # kubernetes
    expiration_seconds: int | None = None  # kubernetes
    ca_from: tuple[str, str, str] | None = None  # kubernetes: ("configMap" | "secret", name, key) for ca.crt
    issuer_ref: IssuerRef | None = None  # issuer: an MtlsIssuer or ClusterMtlsIssuer signs, under its policy


@dataclass(frozen=True)
class Pkcs12Spec:
    """spec.keystores.pkcs12: keystore.p12 and truststore.p12 next to the PEM files, for Java clients."""

    password_secret: str
    password_key: str = "password"
    alias: str = ""


@dataclass(frozen=True)
class CertificateSpec:
    name: str
    namespace: str
    uid: str
    secret_name: str
    subject: Subject
    dns_names: list[str]
    key: KeySpec
    rotation_policy: str  # "Always" | "Never"
    duration: datetime.timedelta
    renew_before: datetime.timedelta
    signer: SignerSpec
    partner_csr: str | None = None  # outbound: a partner's CSR that our CA signs
    renewal_requested: str | None = None  # the RENEW_ANNOTATION value (`kubectl mtls renew`)
    publish_ca_configmap: str | None = None  # spec.publishCA.configMapName
    delete_secrets_with_certificate: bool = False  # spec.secretDeletionPolicy Delete: Secrets get owner references
    csr_policy: CsrPolicy = field(default_factory=CsrPolicy)  # outbound: which partner keys we sign
    csr_policy_given: bool = False  # spec.csrPolicy set: through an issuer it narrows the issuer's key policy
    pkcs12: Pkcs12Spec | None = None  # spec.keystores.pkcs12
    requester: Requester | None = None  # who asked for this spec (api.requester), None when nobody is recorded

    @property
    def outbound(self) -> bool:
        return self.partner_csr is not None

    @property
    def next_secret_name(self) -> str:
        """Where the next key waits during a manual renewal, apart from the key in service."""
        return next_secret_name(self.secret_name)


def parse_spec(body: Mapping[str, Any]) -> CertificateSpec:
    """Raises ValueError naming the field when the body is unusable (the CRD schema catches most before us)."""
    try:
        return _parse_spec(body)
    except (AttributeError, TypeError, KeyError) as exc:
        # Only a body that bypassed the schema gets here (found by fuzzing): name the problem, do not crash.
        raise ValueError(f"spec does not have the shape the CRD schema defines ({type(exc).__name__}: {exc})") from exc


def _parse_spec(body: Mapping[str, Any]) -> CertificateSpec:
    meta = body.get("metadata", {})
    spec = body.get("spec") or {}
    name = meta["name"]
    subject = spec.get("subject") or {}
    common_name = spec.get("commonName") or ""
    if not common_name:
        raise ValueError("spec.commonName is required")
    if not subject.get("country") or not subject.get("organization"):
        raise ValueError("spec.subject.country and spec.subject.organization are required")
    key = spec.get("privateKey") or {}
    algorithm = key.get("algorithm", "RSA")
    if algorithm not in DEFAULT_KEY_SIZES:
        raise ValueError(f"spec.privateKey.algorithm {algorithm!r} is not RSA or ECDSA")
    size = int(key.get("size") or DEFAULT_KEY_SIZES[algorithm])
    duration = parse_duration(spec["duration"]) if spec.get("duration") else DEFAULT_DURATION
    renew_before = parse_duration(spec["renewBefore"]) if spec.get("renewBefore") else DEFAULT_RENEW_BEFORE
    if renew_before >= duration:
        raise ValueError("spec.renewBefore must be shorter than spec.duration")
    return CertificateSpec(
        name=name,
        namespace=meta.get("namespace", "default"),
        uid=meta.get("uid", ""),
        secret_name=spec["secretName"],
        subject=Subject(
            common_name=common_name,
            country=subject["country"],
            organization=subject["organization"],
            state=subject.get("state"),
            locality=subject.get("locality"),
            organizational_unit=subject.get("organizationalUnit"),
        ),
        dns_names=list(spec.get("dnsNames") or [common_name]),
        key=KeySpec(algorithm, size),
        rotation_policy=key.get("rotationPolicy", "Always"),
        duration=duration,
        renew_before=renew_before,
        signer=_parse_signer(name, spec.get("signer") or {}),
        partner_csr=spec.get("csr"),
        renewal_requested=(meta.get("annotations") or {}).get(RENEW_ANNOTATION) or None,
        requester=requester_of(meta),
        publish_ca_configmap=published_configmap(body),
        delete_secrets_with_certificate=spec.get("secretDeletionPolicy") == "Delete",
        csr_policy=_parse_csr_policy(spec.get("csrPolicy") or {}),
        csr_policy_given=bool(spec.get("csrPolicy")),
        pkcs12=_parse_pkcs12(name, (spec.get("keystores") or {}).get("pkcs12")),
    )


def _parse_signer(name: str, signer: Mapping[str, Any]) -> SignerSpec:
    chosen = [k for k in ("manual", "ca", "kubernetes", "issuerRef") if k in signer]
    if len(chosen) > 1:
        raise ValueError("spec.signer must set exactly one of manual, ca, kubernetes or issuerRef")
    if "issuerRef" in signer:
        ref = signer["issuerRef"]
        if ref.get("kind") not in (ISSUER_KIND, CLUSTER_ISSUER_KIND) or not ref.get("name"):
            raise ValueError(f"spec.signer.issuerRef needs kind ({ISSUER_KIND} or {CLUSTER_ISSUER_KIND}) and name")
        return SignerSpec("issuer", issuer_ref=IssuerRef(ref["kind"], ref["name"]))
    if "ca" in signer:
        return SignerSpec("ca", secret_name=signer["ca"]["secretName"])
    if "kubernetes" in signer:
        k8s = signer["kubernetes"]
        return SignerSpec(
            "kubernetes",
            signer_name=k8s["signerName"],
            expiration_seconds=k8s.get("expirationSeconds"),
            ca_from=_parse_ca_from(k8s.get("caFrom")),
        )
    manual = signer.get("manual") or {}
    return SignerSpec("manual", secret_name=manual.get("signedSecretName") or signed_secret_name(name))


def _parse_ca_from(ref: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    if not ref:
        return None
    for field_name, kind in (("configMapKeyRef", "configMap"), ("secretKeyRef", "secret")):
        if field_name in ref:
            return kind, ref[field_name]["name"], ref[field_name].get("key") or "ca.crt"
    raise ValueError("spec.signer.kubernetes.caFrom must set configMapKeyRef or secretKeyRef")


def _parse_csr_policy(policy: Mapping[str, Any]) -> CsrPolicy:
    return parse_key_policy(policy, "allowedKeyAlgorithms")


def parse_key_policy(policy: Mapping[str, Any], algorithms_field: str) -> CsrPolicy:
    """spec.csrPolicy, or an issuer's spec.policy.keys: which keys are certified (never below the guide's floor)."""
    default = CsrPolicy()
    return CsrPolicy(
        algorithms=tuple(policy.get(algorithms_field) or default.algorithms),
        min_rsa_bits=max(int(policy.get("minRSAKeySize") or default.min_rsa_bits), default.min_rsa_bits),
        min_ecdsa_bits=int(policy.get("minECDSAKeySize") or default.min_ecdsa_bits),
    )


def _parse_pkcs12(name: str, pkcs12: Mapping[str, Any] | None) -> Pkcs12Spec | None:
    if not pkcs12:
        return None
    ref = pkcs12.get("passwordSecretRef") or {}
    if not ref.get("name"):
        raise ValueError("spec.keystores.pkcs12.passwordSecretRef.name is required")
    return Pkcs12Spec(ref["name"], ref.get("key") or "password", pkcs12.get("alias") or name)


# --- cheap readers of the raw body: for every watch event, where a full parse would cost too much -----------------


def published_configmap(body: Mapping[str, Any]) -> str | None:
    """spec.publishCA.configMapName, or None."""
    return ((body.get("spec") or {}).get("publishCA") or {}).get("configMapName") or None


def signer_kind_of(body: Mapping[str, Any]) -> str:
    """Which of spec.signer's members is set ("manual" when none; "issuer" for issuerRef)."""
    kind = next(iter((body.get("spec") or {}).get("signer") or {"manual": {}}), "manual")
    return "issuer" if kind == "issuerRef" else kind


def secret_name_of(body: Mapping[str, Any]) -> str:
    """spec.secretName ("" when unset)."""
    return str((body.get("spec") or {}).get("secretName") or "")


def common_name_of_body(body: Mapping[str, Any]) -> str:
    return str((body.get("spec") or {}).get("commonName") or "")


def renew_before_of(body: Mapping[str, Any]) -> datetime.timedelta:
    """spec.renewBefore, or its default when unset (or unreadable: the condition says so elsewhere)."""
    try:
        return parse_duration((body.get("spec") or {})["renewBefore"])
    except (KeyError, ValueError):
        return DEFAULT_RENEW_BEFORE


def referenced_secrets(body: Mapping[str, Any]) -> set[str]:
    """Names of the Secrets whose changes matter to this certificate."""
    spec = body.get("spec") or {}
    name = body["metadata"]["name"]
    names = set()
    if spec.get("secretName"):
        names |= {spec["secretName"], next_secret_name(spec["secretName"])}
    signer = spec.get("signer") or {"manual": {}}
    if "manual" in signer:
        names.add((signer.get("manual") or {}).get("signedSecretName") or signed_secret_name(name))
    if "ca" in signer and (signer.get("ca") or {}).get("secretName"):
        names.add(signer["ca"]["secretName"])
    password = ((spec.get("keystores") or {}).get("pkcs12") or {}).get("passwordSecretRef") or {}
    if password.get("name"):
        names.add(password["name"])
    ca_from = (signer.get("kubernetes") or {}).get("caFrom") or {}
    if (ca_from.get("secretKeyRef") or {}).get("name"):
        names.add(ca_from["secretKeyRef"]["name"])
    return names
