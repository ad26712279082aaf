"""`kubectl mtls record`: record yourself as the requester of certificates, where no MutatingAdmissionPolicy does.

A ClusterMtlsIssuer signs only for a certificate whose recorded requester holds `use` on it, and a Secret a
certificate names is read only if that requester may read it (the manual, "Who asked"). Where the cluster serves a
MutatingAdmissionPolicy the chart records the requester at every change of the spec; elsewhere this command writes
the record for you: your user name and groups as the apiserver authenticates you (a SelfSubjectReview, what `kubectl
auth whoami` asks), which the chart's ValidatingAdmissionPolicy checks are yours.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import kubernetes

from mtls_operator.api.names import GROUP, PLURAL, REQUESTED_BY_ANNOTATION, REQUESTED_BY_GROUPS_ANNOTATION, VERSION
from mtls_operator.api.requester import groups_record
from mtls_operator.plugin.common import certificate_targets


def whoami_with_groups() -> tuple[str, list[str]]:
    request = kubernetes.client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    review: Any = kubernetes.client.AuthenticationV1Api().create_self_subject_review(request)
    info = review.status.user_info
    return str(info.username), list(info.groups or [])


def cmd_record(args: argparse.Namespace, custom: Any, core: Any, namespace: str) -> int:
    targets = certificate_targets(args, custom, namespace)
    if not targets:
        print("no certificates matched")
        return 0
    username, groups = whoami_with_groups()
    record = {REQUESTED_BY_ANNOTATION: username, REQUESTED_BY_GROUPS_ANNOTATION: groups_record(groups)}
    for cert in targets:
        meta = cert["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        if {k: (meta.get("annotations") or {}).get(k) for k in record} == record:
            print(f"{where}: already recorded as requested by {username}")
            continue
        patch = {"metadata": {"annotations": record}}
        custom.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], patch)
        print(f"{where}: recorded as requested by {username} (groups {json.dumps(groups)})")
    return 0
