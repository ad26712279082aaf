"""May this certificate use that cluster issuer? The operator's own check of the RBAC verb `use`, at every issuance
and renewal, for the user recorded as the certificate's requester (api.requester).

The admission policy checks `use` when a certificate is created or changed; this check is what makes revoking
`use` stop the next renewal, and what keeps a cluster issuer closed where nobody recorded who asked. Namespaced
issuers are not checked: whoever may create certificates in a namespace may use its MtlsIssuers, as with its
Secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtls_operator.api.requester import Requester

REQUESTER_UNKNOWN = "RequesterUnknown"
USE_NOT_ALLOWED = "UseNotAllowed"


@dataclass(frozen=True)
class UseRefusal:
    reason: str
    message: str


def requester_needed(cluster_issuer: bool, open_to_selected_namespaces: bool) -> bool:
    """Whether a requester must be known, and hold `use`, for the issuer to sign."""
    return cluster_issuer and not open_to_selected_namespaces


def use_refusal(
    issuer: str, requester: Requester | None, allowed: bool | None, *, record_checked: bool = True
) -> UseRefusal | None:
    """None when the issuer may sign; `allowed` is RBAC's answer for the requester (None: not asked).
    `record_checked`: an admission policy makes the record trustworthy; without one it names whoever its writer
    liked, which is the same as no record."""
    if requester is not None and not record_checked:
        return UseRefusal(
            REQUESTER_UNKNOWN,
            f"{issuer} signs only for a certificate whose requester holds the RBAC verb use on it, and in this "
            "installation no admission policy checks who is recorded as the requester (mtls.dev/requested-by): the "
            "record is not believed. Install the chart's admission policy (issuers.admissionPolicy.enabled, which "
            "passes --cluster-issuer-use-policy), or the issuer's owner sets spec.policy.openToSelectedNamespaces",
        )
    if requester is None:
        return UseRefusal(
            REQUESTER_UNKNOWN,
            f"{issuer} signs only for a certificate whose requester holds the RBAC verb use on it, and nobody is "
            "recorded as this certificate's requester (annotation mtls.dev/requested-by, written at admission by the "
            "chart's MutatingAdmissionPolicy; where the cluster has none, `kubectl mtls record NAME` writes yours, "
            "the admission policy checks it): re-apply the certificate or record yourself, or the issuer's owner "
            "sets spec.policy.openToSelectedNamespaces",
        )
    if not allowed:
        return UseRefusal(
            USE_NOT_ALLOWED,
            f"{requester}, recorded as this certificate's requester, does not hold the RBAC verb use on {issuer} "
            "(any more): nothing is signed with it. Ask the issuer's owner for a binding to a ClusterRole granting "
            "use, or change the certificate's issuerRef",
        )
    return None
