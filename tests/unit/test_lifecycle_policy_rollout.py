"""Which workloads a rotation rolls (lifecycle.policy.rollout): pure decisions on the workload's annotations."""

from __future__ import annotations

from typing import Any

from mtls_operator.api.names import ROLLOUT_ANNOTATION, SERIALS_ANNOTATION
from mtls_operator.lifecycle.policy.rollout import recorded_serials, rollout, watched_certificates


def workload(watches: str | None, recorded: str | None = None) -> dict[str, Any]:
    annotations = {ROLLOUT_ANNOTATION: watches} if watches is not None else {}
    template_annotations = {SERIALS_ANNOTATION: recorded} if recorded is not None else {}
    return {
        "metadata": {"name": "client", "annotations": annotations},
        "spec": {"template": {"metadata": {"annotations": template_annotations}}},
    }


def test_watched_certificates_are_a_comma_separated_list() -> None:
    assert watched_certificates(workload(" a, b ,,c")) == {"a", "b", "c"}
    assert watched_certificates(workload(None)) == set()


def test_a_rotated_certificate_rolls_the_workload_that_watches_it() -> None:
    assert rollout(workload("billing"), {"billing": "0A"}, rotated={"billing"}) == ("billing=0A", ["billing"])


def test_a_workload_that_does_not_opt_in_never_rolls() -> None:
    assert rollout(workload(None), {"billing": "0A"}, rotated={"billing"}) is None
    assert rollout(workload("other"), {"billing": "0A"}, rotated={"billing"}) is None


def test_pods_already_on_the_serial_do_not_roll_again() -> None:
    assert rollout(workload("billing", "billing=0A"), {"billing": "0A"}, rotated={"billing"}) is None


def test_adding_the_annotation_alone_restarts_nothing() -> None:
    # No record and no rotation: the next rotation rolls it, not the opt-in itself.
    assert rollout(workload("billing"), {"billing": "0A"}, rotated=set()) is None


def test_a_stale_record_rolls_even_without_a_rotation_seen_by_this_process() -> None:
    # The operator crashed between writing the Secret and rolling: the check after start catches up.
    assert rollout(workload("billing", "billing=09"), {"billing": "0A"}, rotated=set()) == ("billing=0A", ["billing"])


def test_other_certificates_records_are_kept() -> None:
    value, causes = rollout(workload("a,b", "a=01;b=02"), {"a": "01", "b": "03"}, rotated={"b"}) or ("", [])
    assert recorded_serials(workload("a,b", value)) == {"a": "01", "b": "03"}
    assert causes == ["b"]


def test_a_certificate_without_a_serial_in_service_is_left_alone() -> None:
    assert rollout(workload("billing", "billing=09"), {}, rotated={"billing"}) is None
