"""May this issuer sign this request? Pure: each rule of an issuer's policy returns a named violation or nothing.

Rules (spec.policy of an MtlsIssuer or ClusterMtlsIssuer):
- namespaceSelector (cluster issuers): the certificate's namespace labels must match;
- allowedCommonNames / allowedDNSNames: globs where `*` is any run of characters inside one DNS label (never a
  dot, so `*.{namespace}.partners.example.com` does not also sign `a.b.team.partners...`), `{namespace}` is the
  certificate's namespace, and matching ignores case as DNS does;
- allowedSubject: per subject field, the values allowed (one value: the field is fixed); a field the list names
  must be present;
- maxDuration; keys (algorithms, minimum sizes) of our keys and partners' CSRs alike; partnerCSRs.

A certificate's own spec.csrPolicy narrows the issuer's key policy and never widens it (`narrowed`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.issuer import IssuerPolicy
from mtls_operator.api.names import NAMESPACE_PLACEHOLDER
from mtls_operator.pki.csr import CsrPolicy
from mtls_operator.pki.keys import KeySpec


@dataclass(frozen=True)
class IssuanceRequest:
    """What would be signed, whoever asked: our own CSR (from the spec) or a partner's (from spec.csr)."""

    namespace: str
    common_name: str
    dns_names: Sequence[str]
    subject: Mapping[str, str | None]  # api.issuer.SUBJECT_FIELDS -> value
    duration: datetime.timedelta
    key: KeySpec
    partner_csr: bool = False


@dataclass(frozen=True)
class Violation:
    rule: str  # the policy field that refused, e.g. "policy.allowedCommonNames"
    message: str  # names the rule and the value that broke it

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


def violations(
    request: IssuanceRequest,
    policy: IssuerPolicy,
    namespace_labels: Mapping[str, str] | None,
    key_policy: CsrPolicy | None = None,
) -> list[Violation]:
    """Every rule the request breaks (empty: it may be signed). `namespace_labels` None: namespace not found.
    `key_policy`: the issuer's, narrowed by the certificate's csrPolicy (`narrowed`); default the issuer's."""
    found: list[Violation] = []
    if request.partner_csr and not policy.sign_partner_csrs:
        found.append(
            Violation(
                "policy.partnerCSRs", "this issuer does not sign partners' CSRs (spec.csr); its owner can set Allow"
            )
        )
    if policy.namespace_selector is not None:
        problem = selector_problem(policy.namespace_selector, namespace_labels)
        if problem:
            found.append(Violation("policy.namespaceSelector", f"namespace {request.namespace!r} {problem}"))
    if policy.common_names and not matches_any(request.common_name, policy.common_names, request.namespace):
        shown = expand(policy.common_names, request.namespace)
        found.append(
            Violation("policy.allowedCommonNames", f"commonName {request.common_name!r} matches none of {shown}")
        )
    if policy.dns_names:
        outside = [n for n in request.dns_names if not matches_any(n, policy.dns_names, request.namespace)]
        if outside:
            shown = expand(policy.dns_names, request.namespace)
            found.append(Violation("policy.allowedDNSNames", f"dnsNames {outside} match none of {shown}"))
    for field_name, allowed in policy.subject.items():
        value = request.subject.get(field_name)
        if value not in allowed:
            got = "none" if value is None else repr(value)
            found.append(
                Violation(f"policy.allowedSubject.{field_name}", f"{field_name} is {got}, allowed: {list(allowed)}")
            )
    if policy.max_duration is not None and request.duration > policy.max_duration:
        found.append(
            Violation(
                "policy.maxDuration",
                f"duration {_hours(request.duration)} is longer than this issuer signs ({_hours(policy.max_duration)})",
            )
        )
    key_problem = key_spec_problem(request.key, key_policy or policy.keys)
    if key_problem:
        found.append(Violation("policy.keys", key_problem))
    return found


def narrowed(issuer: CsrPolicy, certificate: CsrPolicy | None) -> CsrPolicy:
    """The key policy of a partner CSR through an issuer: the intersection (a certificate can only ask for less)."""
    if certificate is None:
        return issuer
    return CsrPolicy(
        algorithms=tuple(a for a in issuer.algorithms if a in certificate.algorithms),
        min_rsa_bits=max(issuer.min_rsa_bits, certificate.min_rsa_bits),
        min_ecdsa_bits=max(issuer.min_ecdsa_bits, certificate.min_ecdsa_bits),
    )


def key_spec_problem(key: KeySpec, policy: CsrPolicy) -> str | None:
    if key.algorithm not in policy.algorithms:
        allowed = ", ".join(policy.algorithms) or "none (spec.csrPolicy and the issuer share no algorithm)"
        return f"{key.algorithm} keys are not signed here; allowed: {allowed}"
    minimum = policy.min_rsa_bits if key.algorithm == "RSA" else policy.min_ecdsa_bits
    if key.size < minimum:
        return f"{key.algorithm} key of {key.size} bits is below the minimum of {minimum}"
    return None


def compile_glob(pattern: str, namespace: str) -> re.Pattern[str]:
    text = pattern.replace(NAMESPACE_PLACEHOLDER, namespace).lower()
    return re.compile("".join("[^.]*" if c == "*" else re.escape(c) for c in text))


def matches_any(name: str, patterns: Sequence[str], namespace: str) -> bool:
    lowered = name.lower()
    return any(compile_glob(p, namespace).fullmatch(lowered) for p in patterns)


def expand(patterns: Sequence[str], namespace: str) -> list[str]:
    return [p.replace(NAMESPACE_PLACEHOLDER, namespace) for p in patterns]


def selector_problem(selector: Mapping[str, Any], labels: Mapping[str, str] | None) -> str | None:
    """metav1.LabelSelector semantics (matchLabels and matchExpressions, ANDed). None: it matches."""
    if labels is None:
        return "was not found (its labels decide whether it may use this issuer)"
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return f"is not selected by namespaceSelector: label {key}={value} " + (
                "missing" if key not in labels else f"is {labels[key]!r}"
            )
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression.get("key", ""),
            expression.get("operator", ""),
            expression.get("values") or [],
        )
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not ok:
            return f"is not selected by namespaceSelector: {key} {operator} {values}".rstrip(" []")
    return None


def _hours(duration: datetime.timedelta) -> str:
    seconds = int(duration.total_seconds())
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds}s"
