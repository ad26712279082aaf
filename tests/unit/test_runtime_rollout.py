"""WorkloadRoller against an in-memory WorkloadIO: patches, events, a lost race, a refusal, an outage."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import ROLLOUT_ANNOTATION, SERIALS_ANNOTATION
from mtls_operator.kube.objects import Owner
from mtls_operator.runtime.rollout import WorkloadRoller

OWNER = Owner("billing", "team", "uid-1", True)


class FakeWorkloads:
    def __init__(self, *, fail_first_patch: ApiException | None = None, fail_list: Exception | None = None) -> None:
        self.items = [
            {"kind": "Deployment", "metadata": {"name": "client", "resourceVersion": "1",
                                                "annotations": {ROLLOUT_ANNOTATION: "billing"}},
             "spec": {"template": {"metadata": {}}}},
            {"kind": "StatefulSet", "metadata": {"name": "other", "resourceVersion": "1"},
             "spec": {"template": {"metadata": {}}}},
        ]  # fmt: skip
        self.patches: list[tuple[str, str, str]] = []
        self.fail_first_patch = fail_first_patch
        self.fail_list = fail_list

    async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        if self.fail_list:
            raise self.fail_list
        return self.items

    async def set_template_annotation(
        self, kind: str, namespace: str, name: str, key: str, value: str, resource_version: str
    ) -> None:
        if self.fail_first_patch is not None:
            failure, self.fail_first_patch = self.fail_first_patch, None
            raise failure
        assert key == SERIALS_ANNOTATION
        self.patches.append((kind, name, value))


class Events(list):
    async def __call__(self, owner: Owner, event_type: str, reason: str, message: str) -> None:
        self.append((owner.name, event_type, reason, message))


async def test_a_rotation_patches_the_opted_in_workload_and_says_so() -> None:
    workloads, events = FakeWorkloads(), Events()
    roller = WorkloadRoller(workloads, events)  # type: ignore[arg-type]
    rolled = await roller.roll_namespace("team", {"billing": "0A"}, {"billing"}, {"billing": OWNER})
    assert rolled == ["Deployment/client"]
    assert workloads.patches == [("Deployment", "client", "billing=0A")]
    assert events == [
        ("billing", "Normal", "WorkloadRolled", "rolled Deployment/client: its Pods start with serial 0A")
    ]


async def test_a_lost_race_reads_the_workload_again() -> None:
    workloads, events = FakeWorkloads(fail_first_patch=ApiException(status=409, reason="Conflict")), Events()
    rolled = await WorkloadRoller(workloads, events).roll_namespace(  # type: ignore[arg-type]
        "team", {"billing": "0A"}, {"billing"}, {"billing": OWNER}
    )
    assert rolled == ["Deployment/client"] and len(workloads.patches) == 1


async def test_a_refusal_is_a_warning_event_not_a_crash() -> None:
    workloads, events = FakeWorkloads(fail_list=ApiException(status=403, reason="Forbidden")), Events()
    rolled = await WorkloadRoller(workloads, events).roll_namespace(  # type: ignore[arg-type]
        "team", {"billing": "0A"}, {"billing"}, {"billing": OWNER}
    )
    assert rolled == []
    assert events == [("billing", "Warning", "WorkloadRolloutFailed", "cannot roll workloads in team: 403 Forbidden")]


async def test_an_outage_raises_so_the_queue_retries() -> None:
    outage = urllib3.exceptions.MaxRetryError(None, "/", "connection refused")  # type: ignore[arg-type]
    roller = WorkloadRoller(FakeWorkloads(fail_list=outage), Events())  # type: ignore[arg-type]
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        await roller.roll_namespace("team", {"billing": "0A"}, {"billing"}, {"billing": OWNER})
