"""policy.issuance: each rule of an issuer's policy, the value that broke it named, and csrPolicy only narrowing."""

from __future__ import annotations

import datetime

import pytest

from mtls_operator.api.issuer import IssuerPolicy
from mtls_operator.lifecycle.policy.issuance import IssuanceRequest, narrowed, selector_problem, violations
from mtls_operator.pki.csr import CsrPolicy
from mtls_operator.pki.keys import KeySpec

DAY = datetime.timedelta(days=1)


def request(**changes: object) -> IssuanceRequest:
    fields: dict[str, object] = {
        "namespace": "payments",
        "common_name": "api.payments.partners.example.com",
        "dns_names": ["api.payments.partners.example.com"],
        "subject": {"country": "IE", "organization": "My Company Inc.", "organizationalUnit": None},
        "duration": 90 * DAY,
        "key": KeySpec("RSA", 2048),
    }
    fields.update(changes)
    return IssuanceRequest(**fields)  # type: ignore[arg-type]


def rules(req: IssuanceRequest, policy: IssuerPolicy, labels: dict[str, str] | None = None, **kw: object) -> list[str]:
    return [v.rule for v in violations(req, policy, {} if labels is None else labels, **kw)]  # type: ignore[arg-type]


def test_an_empty_policy_signs_the_partner_guides_request_and_nothing_weaker() -> None:
    assert rules(request(), IssuerPolicy()) == []
    assert rules(request(key=KeySpec("RSA", 1024)), IssuerPolicy()) == ["policy.keys"]
    assert rules(request(key=KeySpec("ECDSA", 256)), IssuerPolicy()) == ["policy.keys"]


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("api.payments.partners.example.com", True),
        ("API.Payments.Partners.Example.COM", True),  # DNS ignores case
        ("a.b.payments.partners.example.com", False),  # `*` never crosses a dot
        ("api.other.partners.example.com", False),  # another namespace's names
        ("payments.partners.example.com", False),
        ("api.payments.partners.example.com.evil.com", False),  # anchored at both ends
    ],
)
def test_name_globs_with_the_namespace_placeholder(name: str, allowed: bool) -> None:
    policy = IssuerPolicy(common_names=("*.{namespace}.partners.example.com",))
    found = violations(request(common_name=name), policy, {})
    assert (found == []) is allowed
    if not allowed:
        assert repr(name) in found[0].message and "*.payments.partners.example.com" in found[0].message


def test_every_dns_name_must_match_and_the_outsiders_are_named() -> None:
    policy = IssuerPolicy(dns_names=("*.example.com",))
    found = violations(request(dns_names=["a.example.com", "b.example.org"]), policy, {})
    assert [v.rule for v in found] == ["policy.allowedDNSNames"]
    assert "b.example.org" in found[0].message and "a.example.com'" not in found[0].message


def test_subject_fields_fixed_allowed_and_required() -> None:
    policy = IssuerPolicy(subject={"organization": ("My Company Inc.",), "organizationalUnit": ("IT", "Ops")})
    found = violations(request(), policy, {})
    assert [v.rule for v in found] == ["policy.allowedSubject.organizationalUnit"]
    assert "organizationalUnit is none" in found[0].message
    wrong = request(subject={"organization": "Evil Corp", "organizationalUnit": "IT"})
    found = violations(wrong, policy, {})
    assert [v.rule for v in found] == ["policy.allowedSubject.organization"]
    assert "'Evil Corp'" in found[0].message and "My Company Inc." in found[0].message


def test_max_duration_names_both_durations() -> None:
    found = violations(request(duration=365 * DAY), IssuerPolicy(max_duration=90 * DAY), {})
    assert (
        [v.rule for v in found] == ["policy.maxDuration"]
        and "8760h" in found[0].message
        and "2160h" in found[0].message
    )
    assert violations(request(duration=90 * DAY), IssuerPolicy(max_duration=90 * DAY), {}) == []


def test_partner_csrs_only_with_consent() -> None:
    assert rules(request(partner_csr=True), IssuerPolicy()) == ["policy.partnerCSRs"]
    assert rules(request(partner_csr=True), IssuerPolicy(sign_partner_csrs=True)) == []


def test_csr_policy_narrows_and_never_widens() -> None:
    issuer = CsrPolicy(algorithms=("RSA", "ECDSA"), min_rsa_bits=3072, min_ecdsa_bits=256)
    wider = CsrPolicy(algorithms=("RSA",), min_rsa_bits=2048, min_ecdsa_bits=256)
    effective = narrowed(issuer, wider)
    assert effective == CsrPolicy(algorithms=("RSA",), min_rsa_bits=3072, min_ecdsa_bits=256)
    policy = IssuerPolicy(keys=issuer, sign_partner_csrs=True)
    assert rules(request(partner_csr=True, key=KeySpec("RSA", 2048)), policy, key_policy=effective) == ["policy.keys"]
    assert rules(request(partner_csr=True, key=KeySpec("ECDSA", 256)), policy, key_policy=effective) == ["policy.keys"]
    assert rules(request(partner_csr=True, key=KeySpec("RSA", 3072)), policy, key_policy=effective) == []
    assert narrowed(issuer, None) == issuer
    disjoint = narrowed(CsrPolicy(algorithms=("RSA",)), CsrPolicy(algorithms=("ECDSA",)))
    found = violations(request(), IssuerPolicy(), {}, key_policy=disjoint)
    assert "share no algorithm" in found[0].message


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"team": "payments"}}, {"team": "payments"}, True),
        ({"matchLabels": {"team": "payments"}}, {"team": "cards"}, False),
        ({"matchLabels": {"team": "payments"}}, {}, False),
        ({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}, {"team": "b"}, True),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {"team": "a"}, False),
        ({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "pci", "operator": "Exists"}]}, {"pci": ""}, True),
        ({"matchExpressions": [{"key": "pci", "operator": "DoesNotExist"}]}, {"pci": "yes"}, False),
        ({"matchExpressions": [{"key": "pci", "operator": "Bogus"}]}, {"pci": "yes"}, False),
        ({}, {}, True),
    ],
)
def test_namespace_selector_has_label_selector_semantics(selector: dict, labels: dict, matches: bool) -> None:
    assert (selector_problem(selector, labels) is None) is matches


def test_an_unknown_namespace_never_matches_a_selector() -> None:
    found = violations(request(), IssuerPolicy(namespace_selector={}), None)
    assert [v.rule for v in found] == ["policy.namespaceSelector"] and "not found" in found[0].message
