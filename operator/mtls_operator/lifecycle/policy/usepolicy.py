"""Whether the admission policy that checks RBAC verb `use` on ClusterMtlsIssuers is in force.

Who created an MtlsCertificate is known only at admission: the operator cannot ask RBAC about a user it never
sees. So a cluster issuer's `use` is enforced by the chart's ValidatingAdmissionPolicy, and the operator, told
its name (--cluster-issuer-use-policy), signs with a cluster issuer only while that policy is in force: the policy
exists, a binding of that name binds it, and the binding denies (a Warn or Audit binding lets anyone through). A
deleted or weakened policy stops cluster-issuer issuance with a named reason instead of silently letting every
tenant use every cluster issuer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

USE_POLICY_MISSING = "UsePolicyMissing"


def use_policy_problem(name: str, policy: Mapping[str, Any] | None, binding: Mapping[str, Any] | None) -> str | None:
    """None when ValidatingAdmissionPolicy `name` is in force through the binding of the same name (the chart
    names both alike); else what is wrong, in words for the certificate's condition."""
    what = f"the admission policy that checks RBAC verb use on ClusterMtlsIssuers ({name})"
    if policy is None:
        return f"{what} does not exist"
    if binding is None:
        return f"{what} has no ValidatingAdmissionPolicyBinding {name}"
    spec = binding.get("spec") or {}
    if spec.get("policyName") != name:
        return f"{what}: ValidatingAdmissionPolicyBinding {name} binds {spec.get('policyName')!r} instead"
    if "Deny" not in (spec.get("validationActions") or []):
        actions = ", ".join(spec.get("validationActions") or []) or "none"
        return f"{what}: its binding does not deny (validationActions: {actions})"
    if _narrows(spec.get("matchResources") or {}):
        return f"{what}: its binding is narrowed by matchResources (some namespaces or objects are not checked)"
    if (policy.get("spec") or {}).get("failurePolicy", "Fail") != "Fail":
        return f"{what} has failurePolicy Ignore: an error in it would let anyone through"
    return None


def _narrows(match: Mapping[str, Any]) -> bool:
    """Whether a binding's matchResources leaves some requests out (the apiserver defaults empty selectors in)."""
    selectors = [match.get("namespaceSelector") or {}, match.get("objectSelector") or {}]
    if any(s.get("matchLabels") or s.get("matchExpressions") for s in selectors):
        return True
    return bool(match.get("resourceRules") or match.get("excludeResourceRules"))


def refusal_message(issuer: str, problem: str) -> str:
    return (
        f"{issuer}: {problem}. The operator cannot tell who created this certificate, so it signs with a cluster "
        "issuer only while that policy is in force: restore it (helm upgrade restores the chart's), or run the "
        "operator without --cluster-issuer-use-policy to accept any namespace's use"
    )
