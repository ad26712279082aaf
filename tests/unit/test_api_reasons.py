"""The reasons catalogue (api.reasons) is complete: every CamelCase word the operator's code spells is either a
reason the catalogue explains or a name listed here as not being one, and the catalogue lists nothing unused."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mtls_operator.api.reasons import REASONS

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "mtls_operator"
WORD = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")

# Spelled in the code, and not a reason: Kubernetes kinds and API names, phases, condition types, Event types,
# policy and selector words, internal verdicts and log-only decisions (the CRL refresh's), the plugin's headings.
NOT_REASONS = {
    "MtlsCertificate", "MtlsIssuer", "ClusterMtlsIssuer", "MtlsRevocation", "CertificateSigningRequest", "ConfigMap",
    "Secret", "Event", "Deployment", "StatefulSet", "DaemonSet", "SelfSubjectReview", "SubjectAccessReview",
    "TokenReview", "Opaque", "BearerToken", "Authorization", "PublicKey",
    "Renewing", "Failed", "Published", "CRLPublished", "Approved", "Denied",
    "Normal", "Warning", "True", "False", "Unknown", "Always", "Never", "Delete", "Allow", "Deny", "Fail", "Accept",
    "In", "NotIn", "Exists", "DoesNotExist", "Acquire", "Follow", "Renew", "Reuse", "Missing", "Unreadable",
    "Adoptable", "Owned", "Foreign", "NoCRL", "EntriesChanged", "CAChanged", "LifetimeChanged", "Refresh",
    "Chain", "Issuer", "Key", "Serial", "Subject", "Verified", "Rejection", "Attempt", "Outcome", "Reconciler",
    "PendingKey", "Signer", "SignerContext", "CertificateSource", "Pkcs11Source", "IssuerKey", "IssuerPolicy",
    "IssuerRef", "IssuerSpec",
}  # fmt: skip


def words_in_code() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.name == "reasons.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and WORD.match(node.value):
                found.add(node.value)
    return found


def test_every_reason_the_code_spells_is_explained():
    unexplained = words_in_code() - set(REASONS) - NOT_REASONS
    assert not unexplained, f"add to api/reasons.py (or to NOT_REASONS here): {sorted(unexplained)}"


def test_the_catalogue_lists_nothing_the_code_no_longer_uses():
    assert not set(REASONS) - words_in_code(), "reasons no longer in the code"
    assert not set(REASONS) & NOT_REASONS


def test_every_reason_says_where_and_what():
    for name, reason in REASONS.items():
        assert reason.appears_on and reason.where, name
        assert len(reason.meaning) > 20 and reason.meaning.endswith((".", ")")), name
