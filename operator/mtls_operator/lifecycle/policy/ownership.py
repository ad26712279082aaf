"""Whose Secret is it: ours for this object, ours for an earlier object of the same name (adoptable), or foreign.

With secretDeletionPolicy Retain (the default) a Secret we create has no owner reference, so deleting the
MtlsCertificate (by mistake, by a GitOps prune, by `kubectl delete crd`) never garbage-collects the key and the
partner-signed certificate. A re-created MtlsCertificate of the same name then adopts what it finds, when the
content still fits its spec; a Secret we did not label for that name is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping

from mtls_operator.api.names import CERTIFICATE_LABEL, MANAGED_BY, MANAGER, UID_ANNOTATION

OWNED = "Owned"
ADOPTABLE = "Adoptable"
FOREIGN = "Foreign"


def secret_ownership(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    owner_uids: list[str],
    certificate_name: str,
    certificate_uid: str,
) -> str:
    if labels.get(MANAGED_BY) != MANAGER or labels.get(CERTIFICATE_LABEL) != certificate_name:
        return FOREIGN
    if certificate_uid in owner_uids or annotations.get(UID_ANNOTATION) == certificate_uid:
        return OWNED
    return ADOPTABLE
