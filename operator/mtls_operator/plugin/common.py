"""What every `kubectl mtls` command shares: errors, the namespace as kubectl picks it, and reading objects."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from mtls_operator.api.names import GROUP, PLURAL, VERSION
from mtls_operator.api.status import utcnow
from mtls_operator.kube.objects import SecretView, secret_from_json


class PluginError(Exception):
    """A problem the user can act on; printed as `error: ...`, exit code 1."""


class UsageError(PluginError):
    """The command cannot run as asked (exit code 2, like argparse's usage errors)."""


def namespace_of(explicit: str | None, context: str | None, config_file: str | None) -> str:
    """-n wins; else the namespace of the (given or current) kubeconfig context; else default."""
    if explicit:
        return explicit
    contexts, active = kubernetes.config.list_kube_config_contexts(config_file=config_file)
    if context:
        active = next((c for c in contexts if c["name"] == context), active)
    return (active.get("context") or {}).get("namespace") or "default"


def get_certificate(custom: kubernetes.client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return,return-value]
    except ApiException as exc:
        if exc.status == 404:
            raise UsageError(f'mtlscertificate "{name}" not found in namespace "{namespace}"') from None
        raise


def get_secret(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> SecretView | None:
    try:
        resp = core.read_namespaced_secret(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return secret_from_json(json.loads(resp.data))  # type: ignore[arg-type]


def age(since: datetime.datetime | None, until: datetime.datetime | None = None) -> str:
    """kubectl-style age: 45s, 12m, 5h, 3d4h."""
    if since is None:
        return "-"
    seconds = int(((until or utcnow()) - since).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    days, hours = divmod(seconds // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def certificate_targets(args: argparse.Namespace, custom: Any, namespace: str) -> list[dict[str, Any]]:
    """The certificates a command names: NAME..., -l SELECTOR or --all (with -A: in every namespace)."""
    if args.names and (args.selector or args.all):
        raise UsageError("give certificate names, or -l SELECTOR, or --all; not several of them")
    if args.names:
        if args.all_namespaces:
            raise UsageError("names need one namespace: drop -A, or use -l / --all")
        return [get_certificate(custom, namespace, name) for name in args.names]
    if not (args.selector or args.all):
        raise UsageError("say which certificates: NAME..., -l SELECTOR or --all")
    selector = args.selector or ""
    if args.all_namespaces:
        found = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=selector)
    else:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, label_selector=selector)
    return list(found.get("items", []))
