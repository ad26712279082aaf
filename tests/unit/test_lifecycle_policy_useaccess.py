"""policy.useaccess: who must be known and allowed for a cluster issuer to sign."""

from __future__ import annotations

from mtls_operator.api.requester import Requester, requester_of
from mtls_operator.lifecycle.policy.useaccess import (
    REQUESTER_UNKNOWN,
    USE_NOT_ALLOWED,
    requester_needed,
    use_refusal,
)


def test_only_cluster_issuers_not_open_to_their_namespaces_need_a_requester():
    assert requester_needed(cluster_issuer=True, open_to_selected_namespaces=False)
    assert not requester_needed(cluster_issuer=True, open_to_selected_namespaces=True)
    assert not requester_needed(cluster_issuer=False, open_to_selected_namespaces=False)


def test_refusals_name_what_is_missing():
    unknown = use_refusal("ClusterMtlsIssuer platform", None, None)
    assert unknown is not None and unknown.reason == REQUESTER_UNKNOWN
    denied = use_refusal("ClusterMtlsIssuer platform", Requester("mallory"), False)
    assert denied is not None and denied.reason == USE_NOT_ALLOWED and "mallory" in denied.message
    assert use_refusal("ClusterMtlsIssuer platform", Requester("dev"), True) is None
    unchecked = use_refusal("ClusterMtlsIssuer platform", Requester("dev"), None, record_checked=False)
    assert unchecked is not None and unchecked.reason == REQUESTER_UNKNOWN and "not believed" in unchecked.message


def test_the_recorded_requester_is_read_strictly():
    def meta(**annotations: str) -> dict:
        return {"annotations": annotations}

    assert requester_of({}) is None
    assert requester_of(meta(**{"mtls.dev/requested-by": "  "})) is None
    plain = requester_of(meta(**{"mtls.dev/requested-by": "dev"}))
    assert plain == Requester("dev", ())
    grouped = requester_of(meta(**{"mtls.dev/requested-by": "dev", "mtls.dev/requested-by-groups": '["a", "b"]'}))
    assert grouped == Requester("dev", ("a", "b"))
    for bad in ("not json", '{"a": 1}', "[1, 2]", "[" + ",".join(['"g"'] * 300) + "]"):
        # unreadable groups: not what the admission policy writes, so the whole record is not believed
        assert requester_of(meta(**{"mtls.dev/requested-by": "dev", "mtls.dev/requested-by-groups": bad})) is None
