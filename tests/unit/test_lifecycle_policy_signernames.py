"""lifecycle.policy.signernames: which signer names the operator's ServiceAccount may be made to ask for."""

from __future__ import annotations

import pytest

from mtls_operator.lifecycle.policy.signernames import signer_name_refusal


@pytest.mark.parametrize(
    ("name", "allowed", "refused"),
    [
        ("example.com/partner", (), False),  # no list: anything outside kubernetes.io/
        ("kubernetes.io/kube-apiserver-client", (), True),  # ... but never a built-in one unlisted
        ("kubernetes.io/kube-apiserver-client", ("kubernetes.io/kube-apiserver-client",), False),
        ("kubernetes.io/kubelet-serving", ("kubernetes.io/kube-apiserver-client",), True),
        ("example.com/partner", ("example.com/*",), False),
        ("evil.example/partner", ("example.com/*",), True),  # a list allows only what it lists
    ],
)
def test_signer_names(name: str, allowed: tuple[str, ...], refused: bool) -> None:
    refusal = signer_name_refusal(name, allowed)
    assert (refusal is not None) == refused
    if refusal is not None:
        assert name in refusal and "signers.kubernetes.allowedSignerNames" in refusal
