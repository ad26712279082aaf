"""The Argo CD health script, run in a real Lua interpreter against snapshots of real objects.

The snapshots in manifests/argocd/mtls.dev/MtlsCertificate/testdata/ were written by the e2e suite from live
objects (MTLS_UPDATE_ARGOCD_SNAPSHOTS=1, tests/e2e/test_dashboard_and_health.py); health_test.yaml is the table
format of Argo CD's own resource_customizations tests.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import yaml

from argocd_health import CUSTOMIZATION, health

CASES = yaml.safe_load((CUSTOMIZATION / "health_test.yaml").read_text())["tests"]


def load(case: dict) -> dict:
    return yaml.safe_load((CUSTOMIZATION / case["inputPath"]).read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_health_table(case: dict) -> None:
    assert health(load(case)) == case["healthStatus"]


@pytest.mark.parametrize("case", CASES, ids=[c["inputPath"] for c in CASES])
def test_result_does_not_depend_on_condition_order(case: dict) -> None:
    obj = load(case)
    conditions = obj.get("status", {}).get("conditions") or []
    for order in itertools.permutations(conditions):
        shuffled = copy.deepcopy(obj)
        shuffled["status"]["conditions"] = list(order)
        assert health(shuffled) == case["healthStatus"]


def test_every_state_is_covered() -> None:
    assert {c["healthStatus"]["status"] for c in CASES} == {"Healthy", "Progressing", "Degraded"}


def test_no_status_yet_is_progressing() -> None:
    obj = {"apiVersion": "mtls.dev/v1alpha1", "kind": "MtlsCertificate", "metadata": {"name": "x", "namespace": "n"}}
    assert health(obj)["status"] == "Progressing"


def test_spec_change_not_yet_seen_is_progressing() -> None:
    healthy = next(c for c in CASES if c["healthStatus"]["status"] == "Healthy")
    obj = load(healthy)
    obj["metadata"]["generation"] = 99
    assert health(obj) == {"status": "Progressing", "message": "Waiting for mtls-operator to act on spec generation 99"}


@pytest.mark.parametrize("phase", ["Failed", "Ready"])
def test_a_policy_violation_needs_a_person_even_while_the_certificate_serves(phase: str) -> None:
    """Refused by its issuer's policy: nothing is signed (Failed), or the one in service will not be renewed."""
    obj = {
        "apiVersion": "mtls.dev/v1alpha1",
        "kind": "MtlsCertificate",
        "metadata": {"name": "x", "namespace": "n", "generation": 1},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False", "reason": "PolicyViolation", "observedGeneration": 1,
                            "message": "ClusterMtlsIssuer platform refuses to sign: policy.maxDuration: ..."}],
        },
    }  # fmt: skip
    assert health(obj)["status"] == "Degraded"
    assert health(obj)["message"].startswith("PolicyViolation: ClusterMtlsIssuer platform refuses")
