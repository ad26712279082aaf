"""The kopf adapters: what they keep between events."""

from __future__ import annotations

import kopf

from mtls_operator.runtime.handlers import ForgetfulMemories, NoDiffBase


async def test_kopf_keeps_no_record_per_object() -> None:
    memories = ForgetfulMemories()
    bodies = [{"metadata": {"uid": f"uid-{i}", "namespace": "ns", "name": f"c{i}"}} for i in range(3)]
    for body in bodies:
        memory = await memories.recall(body, memobase=kopf.Memo(controller="the controller"), noticed_by_listing=True)
        assert memory.memo["controller"] == "the controller"  # handlers still get the memo
    assert list(memories.iter_all_memories()) == []


def test_no_diff_base_is_built_or_stored() -> None:
    storage = NoDiffBase()
    body = kopf.Body({"metadata": {"name": "c"}, "spec": {"commonName": "x"}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
