"""Who asked for a certificate's spec: the requester recorded on the object at admission (api.names
REQUESTED_BY_ANNOTATION). Only the admission policies make it trustworthy: the operator believes it only while they
are in force (lifecycle.policy.usepolicy)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.names import REQUESTED_BY_ANNOTATION, REQUESTED_BY_GROUPS_ANNOTATION

MAX_GROUPS = 256  # a requester's groups as recorded; more is not a real user, and every review would carry them


@dataclass(frozen=True)
class Requester:
    username: str
    groups: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.username


def groups_record(groups: Sequence[str]) -> str:
    """The groups annotation exactly as the chart's admission policies write and check it: ["a", "b"]."""
    return "[" + ", ".join(f'"{group}"' for group in groups) + "]"


def requester_of(metadata: Mapping[str, Any]) -> Requester | None:
    """The recorded requester, or None when there is none (or it cannot be read: then it is treated as unknown)."""
    annotations = metadata.get("annotations") or {}
    username = annotations.get(REQUESTED_BY_ANNOTATION)
    if not isinstance(username, str) or not username.strip():
        return None
    raw = annotations.get(REQUESTED_BY_GROUPS_ANNOTATION)
    groups: tuple[str, ...] = ()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(parsed, list) or len(parsed) > MAX_GROUPS or not all(isinstance(g, str) for g in parsed):
            return None
        groups = tuple(parsed)
    return Requester(username.strip(), groups)
