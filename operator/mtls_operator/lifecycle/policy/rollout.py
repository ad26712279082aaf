"""Which workloads a rotation rolls, and the pod-template annotation that rolls them (pure: no I/O).

A workload opts in with ROLLOUT_ANNOTATION naming certificates of its namespace. Its pod template carries
SERIALS_ANNOTATION, "<certificate>=<serial>;...": the serials its Pods were started with. A certificate whose serial
in service differs from the recorded one rolls the workload; recording the new serial is the roll.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtls_operator.api.names import ROLLOUT_ANNOTATION, SERIALS_ANNOTATION


def watched_certificates(workload: Mapping[str, Any]) -> set[str]:
    """The certificate names the workload's ROLLOUT_ANNOTATION lists (empty: it did not opt in)."""
    value = ((workload.get("metadata") or {}).get("annotations") or {}).get(ROLLOUT_ANNOTATION, "")
    return {name.strip() for name in value.split(",") if name.strip()}


def recorded_serials(workload: Mapping[str, Any]) -> dict[str, str]:
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("annotations") or {}).get(SERIALS_ANNOTATION, "")
    pairs = (item.split("=", 1) for item in value.split(";") if "=" in item)
    return {name.strip(): serial.strip() for name, serial in pairs}


def encode_serials(serials: Mapping[str, str]) -> str:
    return ";".join(f"{name}={serial}" for name, serial in sorted(serials.items()))


def rollout(
    workload: Mapping[str, Any], serials_in_service: Mapping[str, str], rotated: set[str]
) -> tuple[str, list[str]] | None:
    """(the new SERIALS_ANNOTATION value, the certificates that caused it) when `workload` must roll, else None.

    A watched certificate rolls it when the serial its Pods started with differs from the one in service. A
    certificate without a record (the annotation was just added) rolls it only when it was just rotated: adding
    the opt-in annotation alone restarts nothing.
    """
    watched = watched_certificates(workload)
    recorded = recorded_serials(workload)
    changed = sorted(
        name
        for name in watched
        if name in serials_in_service
        and recorded.get(name) != serials_in_service[name]
        and (name in recorded or name in rotated)
    )
    if not changed:
        return None
    return encode_serials({**recorded, **{name: serials_in_service[name] for name in changed}}), changed
