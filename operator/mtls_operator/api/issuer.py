"""MtlsIssuer and ClusterMtlsIssuer specs as typed values (the only reader of an issuer's raw spec).

An issuer is one CA key in one place and the policy its owner sets for what that CA signs. The certificate's side
of the reference is `spec.signer.issuerRef` (api.spec.SignerSpec.issuer_ref).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtls_operator.api.names import CA_CRT, CLUSTER_ISSUER_KIND, ISSUER_KIND, PIN_KEY
from mtls_operator.api.refs import IssuerKey, IssuerRef
from mtls_operator.api.spec import parse_duration, parse_key_policy
from mtls_operator.pki.csr import CsrPolicy

# How long a CA rotation spreads the re-issuance of the certificates the old CA signed: a day keeps 10,000
# certificates at about one issuance every 9 s, and every one is re-issued well before a typical CA overlap ends.
DEFAULT_ROTATION_SPREAD = datetime.timedelta(hours=24)
# How long a CRL is valid (nextUpdate - thisUpdate); it is signed again at half of it, so a server that fetches it
# daily always holds one with a day to spare. Its floor keeps the re-signing (a token operation for an HSM key)
# from running more than twice a minute.
DEFAULT_CRL_LIFETIME = datetime.timedelta(days=7)
MIN_CRL_LIFETIME = datetime.timedelta(minutes=1)
SUBJECT_FIELDS = ("country", "organization", "organizationalUnit", "state", "locality")


@dataclass(frozen=True)
class IssuerPolicy:
    """spec.policy. Every list empty or unset means "no rule of that kind"; the key policy always applies."""

    namespace_selector: Mapping[str, Any] | None = None  # a metav1.LabelSelector; ClusterMtlsIssuer only
    common_names: tuple[str, ...] = ()  # glob patterns, `{namespace}` replaced by the certificate's namespace
    dns_names: tuple[str, ...] = ()
    subject: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # field -> allowed values
    max_duration: datetime.timedelta | None = None
    keys: CsrPolicy = field(default_factory=CsrPolicy)  # of our own keys and of partners' CSRs alike
    sign_partner_csrs: bool = False  # spec.csr (outbound): off unless the issuer's owner allows it
    # ClusterMtlsIssuer: sign for any certificate of a selected namespace, without asking RBAC whether its requester
    # holds `use` (the owner's explicit choice; default: ask, and refuse a certificate with no recorded requester)
    open_to_selected_namespaces: bool = False


@dataclass(frozen=True)
class CertificateSource:
    """spec.ca.certificate: where the CA certificate (public) of a token-held key is, in the CA's namespace."""

    secret_name: str | None
    configmap_name: str | None
    key: str = CA_CRT

    def describe(self, namespace: str = "") -> str:
        """e.g. "ConfigMap team/payments-ca (key ca.crt)", for messages."""
        kind, name = ("Secret", self.secret_name) if self.secret_name else ("ConfigMap", self.configmap_name)
        return f"{kind} {namespace + '/' if namespace else ''}{name} (key {self.key})"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Pkcs11Source:
    """spec.ca.pkcs11: the CA key in a PKCS#11 token (never in a Secret), and the Secret with the token's PIN."""

    module: str
    token_label: str | None
    token_serial: str | None
    key_label: str | None
    key_id: bytes | None
    pin_secret_name: str
    pin_secret_key: str
    certificate: CertificateSource


@dataclass(frozen=True)
class IssuerSpec:
    key: IssuerKey
    uid: str
    generation: int
    ca_secret_name: str | None  # the CA keypair in a Secret; None when the key is in a token (pkcs11)
    policy: IssuerPolicy
    rotation_spread: datetime.timedelta = DEFAULT_ROTATION_SPREAD
    pkcs11: Pkcs11Source | None = None
    crl_lifetime: datetime.timedelta = DEFAULT_CRL_LIFETIME
    crl_url: str | None = None  # spec.crl.distributionPointURL: put into every certificate it signs
    revoke_on_delete: bool = False  # spec.revocation.revokeOnDelete: a deleted certificate's serial is revoked
    revoke_superseded: bool = False  # spec.revocation.revokeSuperseded: a renewal revokes the one it replaced


def issuer_key_of(kind: str, body: Mapping[str, Any]) -> IssuerKey:
    meta = body.get("metadata") or {}
    namespace = (meta.get("namespace") or "") if kind == ISSUER_KIND else ""
    return IssuerKey(kind, namespace, meta.get("name") or "")


def parse_issuer(kind: str, body: Mapping[str, Any]) -> IssuerSpec:
    """Raises ValueError naming the field when the body is unusable (the CRD schema catches most before us)."""
    try:
        return _parse_issuer(kind, body)
    except (AttributeError, TypeError, KeyError) as exc:
        raise ValueError(f"spec does not have the shape the CRD schema defines ({type(exc).__name__}: {exc})") from exc


def _parse_issuer(kind: str, body: Mapping[str, Any]) -> IssuerSpec:
    if kind not in (ISSUER_KIND, CLUSTER_ISSUER_KIND):
        raise ValueError(f"unknown issuer kind {kind!r}")
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    ca = spec.get("ca") or {}
    secret_name = ca.get("secretName") or None
    if (secret_name is None) == (ca.get("pkcs11") is None):
        raise ValueError("spec.ca needs exactly one of secretName (the CA keypair in a Secret) and pkcs11")
    token = _pkcs11(ca)
    policy = spec.get("policy") or {}
    if kind == ISSUER_KIND and policy.get("namespaceSelector") is not None:
        raise ValueError("spec.policy.namespaceSelector applies to a ClusterMtlsIssuer only")
    if kind == ISSUER_KIND and policy.get("openToSelectedNamespaces") is not None:
        raise ValueError("spec.policy.openToSelectedNamespaces applies to a ClusterMtlsIssuer only")
    subject = policy.get("allowedSubject") or {}
    unknown = sorted(set(subject) - set(SUBJECT_FIELDS))
    if unknown:
        raise ValueError(f"spec.policy.allowedSubject has unknown field(s) {unknown}; known: {list(SUBJECT_FIELDS)}")
    spread = (spec.get("rotation") or {}).get("spread")
    crl = spec.get("crl") or {}
    lifetime = parse_duration(crl["lifetime"]) if crl.get("lifetime") else DEFAULT_CRL_LIFETIME
    if lifetime < MIN_CRL_LIFETIME:
        raise ValueError(f"spec.crl.lifetime must be at least {int(MIN_CRL_LIFETIME.total_seconds())}s")
    return IssuerSpec(
        key=issuer_key_of(kind, body),
        uid=meta.get("uid") or "",
        generation=int(meta.get("generation") or 0),
        ca_secret_name=secret_name,
        policy=IssuerPolicy(
            namespace_selector=_selector(policy.get("namespaceSelector")),
            common_names=_patterns(policy, "allowedCommonNames"),
            dns_names=_patterns(policy, "allowedDNSNames"),
            subject={k: _patterns(subject, k) for k, values in subject.items() if values},
            max_duration=parse_duration(policy["maxDuration"]) if policy.get("maxDuration") else None,
            keys=parse_key_policy(policy.get("keys") or {}, "allowedAlgorithms"),
            sign_partner_csrs=policy.get("partnerCSRs") == "Allow",
            open_to_selected_namespaces=policy.get("openToSelectedNamespaces") is True,
        ),
        rotation_spread=parse_duration(spread) if spread else DEFAULT_ROTATION_SPREAD,
        pkcs11=token,
        crl_lifetime=lifetime,
        crl_url=str(crl["distributionPointURL"]) if crl.get("distributionPointURL") else None,
        revoke_on_delete=bool((spec.get("revocation") or {}).get("revokeOnDelete")),
        revoke_superseded=bool((spec.get("revocation") or {}).get("revokeSuperseded")),
    )


def _pkcs11(ca: Mapping[str, Any]) -> Pkcs11Source | None:
    token = ca.get("pkcs11")
    if token is None:
        return None
    token_label, token_serial = token.get("tokenLabel") or None, token.get("tokenSerial") or None
    if (token_label is None) == (token_serial is None):
        raise ValueError("spec.ca.pkcs11 needs exactly one of tokenLabel and tokenSerial")
    key_label, key_id_hex = token.get("keyLabel") or None, token.get("keyId") or None
    if (key_label is None) == (key_id_hex is None):
        raise ValueError("spec.ca.pkcs11 needs exactly one of keyLabel and keyId")
    try:
        key_id = bytes.fromhex(str(key_id_hex).replace(":", "")) if key_id_hex else None
    except ValueError:
        raise ValueError(f"spec.ca.pkcs11.keyId {key_id_hex!r} is not hexadecimal (CKA_ID, e.g. 01a2)") from None
    pin = token.get("pinSecretRef") or {}
    if not token.get("module") or not pin.get("name"):
        raise ValueError("spec.ca.pkcs11 needs module and pinSecretRef.name")
    certificate = ca.get("certificate") or {}
    cert_secret, cert_configmap = certificate.get("secretName") or None, certificate.get("configMapName") or None
    if (cert_secret is None) == (cert_configmap is None):
        raise ValueError(
            "spec.ca.pkcs11 needs spec.ca.certificate with exactly one of secretName and configMapName "
            "(where the CA certificate is; the key stays in the token)"
        )
    return Pkcs11Source(
        module=str(token["module"]),
        token_label=token_label,
        token_serial=token_serial,
        key_label=key_label,
        key_id=key_id,
        pin_secret_name=str(pin["name"]),
        pin_secret_key=str(pin.get("key") or PIN_KEY),
        certificate=CertificateSource(cert_secret, cert_configmap, str(certificate.get("key") or CA_CRT)),
    )


def revokes_on_delete(body: Mapping[str, Any] | None) -> bool:
    """Whether an issuer's raw body asks for its certificates' revocation when their object is deleted."""
    revocation = ((body or {}).get("spec") or {}).get("revocation")
    return isinstance(revocation, Mapping) and bool(revocation.get("revokeOnDelete"))


def uses_token(body: Mapping[str, Any]) -> bool:
    """Whether an issuer's raw body keeps its CA key in a PKCS#11 token."""
    ca = (body.get("spec") or {}).get("ca")
    return isinstance(ca, Mapping) and isinstance(ca.get("pkcs11"), Mapping)


def ca_secret_names(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The Secrets (in the CA's namespace) an issuer's raw body reads: the CA keypair's, or the PIN's and the CA
    certificate's. A change to any of them changes whether it can sign."""
    ca = (body.get("spec") or {}).get("ca") or {}
    if not isinstance(ca, Mapping):
        return ()
    token, certificate = (_mapping(ca.get("pkcs11")), _mapping(ca.get("certificate")))
    pin = _mapping(token.get("pinSecretRef"))
    names = (ca.get("secretName"), pin.get("name"), certificate.get("secretName"))
    return tuple(dict.fromkeys(str(n) for n in names if n))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _patterns(policy: Mapping[str, Any], field_name: str) -> tuple[str, ...]:
    values = policy.get(field_name) or ()
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"spec.policy.{field_name} must be a list of strings")
    return tuple(values)


def _selector(selector: Any) -> Mapping[str, Any] | None:
    """A metav1.LabelSelector of the shape the schema defines (policy.issuance reads it without more checks)."""
    if selector is None:
        return None
    labels = selector.get("matchLabels") or {} if isinstance(selector, Mapping) else None
    expressions = selector.get("matchExpressions") or [] if isinstance(selector, Mapping) else None
    shaped = (
        isinstance(labels, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        and isinstance(expressions, list)
        and all(
            isinstance(e, Mapping) and isinstance(e.get("key"), str) and isinstance(e.get("values") or [], list)
            for e in expressions
        )
    )
    if not shaped:
        raise ValueError("spec.policy.namespaceSelector must be a label selector (matchLabels, matchExpressions)")
    return selector  # type: ignore[no-any-return]


def issuer_ref_of(body: Mapping[str, Any]) -> IssuerKey | None:
    """The issuer a certificate's raw body references, without a full parse (for every watch event)."""
    ref = ((body.get("spec") or {}).get("signer") or {}).get("issuerRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    kind = ref.get("kind") or ISSUER_KIND  # the CRD requires it; the narrower kind if a body bypassed it
    return IssuerRef(kind, str(ref["name"])).key(str((body.get("metadata") or {}).get("namespace") or ""))


__all__ = [
    "CertificateSource",
    "IssuerKey",
    "IssuerPolicy",
    "IssuerRef",
    "IssuerSpec",
    "Pkcs11Source",
    "ca_secret_names",
    "issuer_key_of",
    "issuer_ref_of",
    "parse_issuer",
    "uses_token",
]
