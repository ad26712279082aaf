"""lifecycle.policy.usepolicy: when the admission policy that checks `use` on cluster issuers is in force."""

from __future__ import annotations

from typing import Any

from mtls_operator.lifecycle.policy.usepolicy import use_policy_problem

NAME = "mtls-operator-cluster-issuer-use"
POLICY: dict[str, Any] = {"metadata": {"name": NAME}, "spec": {"failurePolicy": "Fail"}}


def binding(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": NAME}, "spec": {"policyName": NAME, "validationActions": ["Deny"], **spec}}


def test_in_force_only_when_the_policy_is_bound_to_deny_everywhere_and_fails_closed() -> None:
    assert use_policy_problem(NAME, POLICY, binding()) is None
    assert use_policy_problem(NAME, POLICY, binding(validationActions=["Deny", "Audit"])) is None
    everything = {"namespaceSelector": {}, "objectSelector": {}, "matchPolicy": "Equivalent"}  # as defaulted
    assert use_policy_problem(NAME, POLICY, binding(matchResources=everything)) is None
    cases = {
        "does not exist": (None, binding()),
        f"has no ValidatingAdmissionPolicyBinding {NAME}": (POLICY, None),
        "binds 'something-else' instead": (POLICY, binding(policyName="something-else")),
        "does not deny (validationActions: Warn, Audit)": (POLICY, binding(validationActions=["Warn", "Audit"])),
        "does not deny (validationActions: none)": (POLICY, binding(validationActions=[])),
        "narrowed by matchResources": (
            POLICY,
            binding(matchResources={"namespaceSelector": {"matchLabels": {"checked": "yes"}}}),
        ),
        "failurePolicy Ignore": ({"spec": {"failurePolicy": "Ignore"}}, binding()),
    }
    for words, (policy, bound) in cases.items():
        problem = use_policy_problem(NAME, policy, bound)
        assert problem is not None and words in problem, (words, problem)
        assert f"({NAME})" in problem
