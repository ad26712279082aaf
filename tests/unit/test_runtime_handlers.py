"""The kopf adapters: what they keep between events."""

from __future__ import annotations

import inspect

import kopf
from kopf._core.reactor.inventory import ResourceMemories

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


def test_the_private_kopf_api_we_subclass_still_has_the_shape_we_override() -> None:
    """kopf._core.reactor.inventory is private: pinned below 1.46 in pyproject.toml, and this fails when it moves."""
    ours = inspect.signature(ForgetfulMemories.recall)
    theirs = inspect.signature(ResourceMemories.recall)
    assert list(ours.parameters) == list(theirs.parameters), "kopf changed ResourceMemories.recall"
    assert "ephemeral" in theirs.parameters, "ForgetfulMemories relies on recall(..., ephemeral=True)"
    assert inspect.signature(kopf.run).parameters.get("memories") is not None, "kopf.run(memories=...) is gone"
