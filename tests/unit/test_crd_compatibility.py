"""API compatibility, in `make test`: HEAD's CRD accepts, without pruning, everything the previous release's CRD
accepted (harness.crdcompat), unless the change is a new API version with a conversion path. The deliberate
breaking changes below show the check failing on each kind of break."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from harness.cluster import ROOT
from harness.crdcompat import breaking_changes
from harness.releases import previous_release

CRD_PATH = "manifests/crd/mtls.dev_mtlscertificates.yaml"


def head_crd() -> dict[str, Any]:
    return yaml.safe_load((ROOT / CRD_PATH).read_text())


def released_crd() -> dict[str, Any]:
    release = previous_release()
    shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{release.commit}:{CRD_PATH}"], capture_output=True)
    assert shown.returncode == 0, f"release {release.version}'s CRD: {shown.stderr.decode()} (needs git history)"
    return yaml.safe_load(shown.stdout)


# Tightenings accepted on purpose, each with its reason and its CHANGELOG upgrade note. Keep this list short: an
# entry here is a promise broken to someone.
ACCEPTED = {
    "v1alpha1: .spec.signer.kubernetes.signerName: maxLength lowered to 571": (
        "0.2.0: certificates.k8s.io refuses any other signerName, so no such object could ever be signed; CRD "
        "validation ratcheting (Kubernetes >= 1.30) keeps an existing object updatable while the field is unchanged"
    ),
    "v1alpha1: .spec.signer.kubernetes.signerName: a new CEL rule on fields that existed before": (
        "0.2.0: the same rule as a pattern (domain/name), for the same reason"
    ),
}


def test_head_accepts_everything_the_previous_release_accepted() -> None:
    problems = breaking_changes(released_crd(), head_crd())
    unaccepted = [p for p in problems if not any(p.startswith(known) for known in ACCEPTED)]
    assert unaccepted == [], "a breaking CRD change: bump the API version with a conversion path, or revert it"
    assert all(any(p.startswith(known) for p in problems) for known in ACCEPTED), "a stale ACCEPTED entry"


def spec_of(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _remove_field(crd: dict) -> None:
    del spec_of(crd)["properties"]["duration"]


def _narrow_enum(crd: dict) -> None:
    spec_of(crd)["properties"]["privateKey"]["properties"]["algorithm"]["enum"] = ["RSA"]


def _require_field(crd: dict) -> None:
    spec_of(crd).setdefault("required", []).append("dnsNames")


def _tighten_rule(crd: dict) -> None:
    spec_of(crd)["properties"]["commonName"].setdefault("x-kubernetes-validations", []).append(
        {"rule": "self.size() < 20", "message": "short names only"}
    )


def _lower_bound(crd: dict) -> None:
    spec_of(crd)["properties"]["commonName"]["maxLength"] = 10


def _drop_version(crd: dict) -> None:
    crd["spec"]["versions"][0]["name"] = "v1beta1"


@pytest.mark.parametrize(
    ("breaking", "named"),
    [
        (_remove_field, ".spec.duration: removed"),
        (_narrow_enum, "enum lost ['ECDSA']"),
        (_require_field, "dnsNames is newly required"),
        (_tighten_rule, "a new CEL rule on fields that existed before: self.size() < 20"),
        (_lower_bound, "maxLength lowered to 10"),
        (_drop_version, "version v1alpha1 is no longer served"),
    ],
    ids=["removed-field", "narrowed-enum", "new-required", "tightened-cel", "lower-max", "dropped-version"],
)
def test_a_deliberate_breaking_change_is_named(breaking: Callable[[dict], None], named: str) -> None:
    broken = copy.deepcopy(head_crd())
    breaking(broken)
    problems = breaking_changes(head_crd(), broken)
    assert any(named in p for p in problems), problems


def test_a_new_optional_field_with_a_rule_guarded_by_it_is_compatible() -> None:
    grown = copy.deepcopy(head_crd())
    spec_of(grown)["properties"]["futureField"] = {"type": "string"}
    spec_of(grown).setdefault("x-kubernetes-validations", []).append(
        {"rule": "!has(self.futureField) || self.futureField != ''", "message": "not empty"}
    )
    assert breaking_changes(head_crd(), grown) == []


@pytest.mark.parametrize(
    ("change", "compatible"),
    [(" || has(self.secretName)", True), (" && has(self.secretName)", False)],
    ids=["widened-by-or", "narrowed-by-and"],
)
def test_an_old_rule_widened_by_a_disjunction_is_compatible(change: str, compatible: bool) -> None:
    changed = copy.deepcopy(head_crd())
    rules = spec_of(changed)["x-kubernetes-validations"]
    rules[0] = {**rules[0], "rule": rules[0]["rule"] + change}
    assert (breaking_changes(head_crd(), changed) == []) is compatible
