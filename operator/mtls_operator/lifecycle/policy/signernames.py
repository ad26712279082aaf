"""Which CertificateSigningRequest signer names a certificate may ask for (signer `kubernetes`).

The request is created by the operator's ServiceAccount, so an approver (a person or a controller) sees the operator
asking: a tenant must not be able to make it ask for any signer with any subject. The platform team lists the
signer names (`--kubernetes-signer-name`, chart `signers.kubernetes.allowedSignerNames`, globs). With no list, any
signer outside `kubernetes.io/` may be asked for: the built-in signers issue credentials the apiserver and the
kubelets trust, so each of them must be listed by name to be used at all.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

BUILT_IN_PREFIX = "kubernetes.io/"


def signer_name_refusal(signer_name: str, allowed: tuple[str, ...]) -> str | None:
    """Why `signer_name` may not be asked for, or None."""
    if allowed:
        if any(fnmatchcase(signer_name, pattern) for pattern in allowed):
            return None
        return (
            f"signer {signer_name} is not one this operator may ask for (allowed: {', '.join(allowed)}); the platform "
            "team lists them (chart value signers.kubernetes.allowedSignerNames)"
        )
    if signer_name.startswith(BUILT_IN_PREFIX):
        return (
            f"signer {signer_name} is a built-in Kubernetes signer, whose certificates the cluster itself trusts: the "
            "platform team must list it to allow it (chart value signers.kubernetes.allowedSignerNames)"
        )
    return None
