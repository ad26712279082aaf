"""`mtls-operator run`: parses the flags into Settings, builds the operator (runtime.composition), starts kopf."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from mtls_operator import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtls-operator", description="Kubernetes operator for mTLS certificates")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator against the cluster in KUBECONFIG (or in-cluster)")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument("-n", "--namespace", action="append", help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--metrics-address", default="0.0.0.0", help="listen address for /metrics and /healthz")
    run.add_argument(
        "--metrics-port", type=int, default=8080, help="plain HTTP port for /healthz, /readyz and the CRLs (8080)"
    )
    run.add_argument(
        "--secure-metrics-port",
        type=int,
        default=8443,
        help="HTTPS port for /metrics, for a bearer token RBAC allows to get /metrics (8443)",
    )
    run.add_argument(
        "--insecure-metrics",
        action="store_true",
        help="serve /metrics on --metrics-port over plain HTTP without authentication (the pre-0.2.0 behaviour)",
    )
    run.add_argument("--metrics-cert-dir", help="tls.crt and tls.key for the HTTPS port (default: self-signed)")
    run.add_argument("--api-threads", type=int, default=8, help="concurrent Kubernetes API requests (8)")
    run.add_argument(
        "--cpu-threads", type=int, default=0, help="key generation threads (default: the CPUs the container may use)"
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="active/standby replicas: only the holder of a coordination.k8s.io Lease reconciles",
    )
    run.add_argument(
        "--leader-election-namespace",
        help="namespace of the Lease (default: the pod's own namespace, or 'default' outside a cluster)",
    )
    run.add_argument("--leader-election-id", default="mtls-operator", help="name of the Lease (mtls-operator)")
    run.add_argument(
        "--kubernetes-signer",
        action="store_true",
        help="enable signer.kubernetes (creates and watches certificates.k8s.io CertificateSigningRequests; "
        "needs cluster-scoped RBAC for them)",
    )
    run.add_argument(
        "--kubernetes-signer-name",
        action="append",
        default=[],
        metavar="GLOB",
        help="a signer name certificates may ask for (repeat; globs such as example.com/*). None given: any signer "
        "outside kubernetes.io/, whose built-in signers must each be listed",
    )
    run.add_argument(
        "--roll-workloads",
        action="store_true",
        help="roll Deployments/StatefulSets/DaemonSets annotated mtls.dev/rollout-on-rotation=<certificates> after "
        "a rotation (needs list/patch on them)",
    )
    run.add_argument(
        "--cluster-issuer-namespace",
        help="namespace holding the CA Secrets of ClusterMtlsIssuers (default: the pod's own namespace, or 'default' "
        "outside a cluster)",
    )
    run.add_argument(
        "--cluster-issuer-use-policy",
        metavar="NAME",
        help="the ValidatingAdmissionPolicy (and its binding, of the same name) that checks RBAC verb use on "
        "ClusterMtlsIssuers: cluster issuers sign only while it is in force (default: none)",
    )
    run.add_argument(
        "--use-policy-check-seconds",
        type=float,
        default=30.0,
        help="how often that policy is looked at (30)",
    )
    run.add_argument(
        "--use-review-seconds",
        type=float,
        default=60.0,
        help="how long RBAC's answer for a certificate's requester (`use` of a cluster issuer, `get` of a Secret the "
        "certificate names) is remembered: a revoked grant bites within this (60)",
    )
    run.add_argument(
        "--shard-count",
        type=int,
        default=1,
        help="split the certificates between this many processes by hash of namespace/name (1: no sharding)",
    )
    run.add_argument(
        "--shard-index",
        type=int,
        default=None,
        help="which shard this process is, 0..count-1 (default: the ordinal at the end of the pod name "
        "of a StatefulSet, else 0)",
    )
    run.add_argument(
        "--pkcs11-module",
        action="append",
        default=[],
        metavar="PATH",
        help="a PKCS#11 library issuers may name in spec.ca.pkcs11.module (repeatable; no other is ever loaded)",
    )
    run.add_argument(
        "--pkcs11-namespaced-token",
        action="append",
        default=[],
        metavar="LABEL=NAMESPACE",
        help="lets the MtlsIssuers of NAMESPACE use the token labelled LABEL (repeatable); without it a token is "
        "for ClusterMtlsIssuers only",
    )
    run.add_argument(
        "--pkcs11-probe-seconds",
        type=float,
        default=30.0,
        help="how often a token-held CA key is probed with one signature (30)",
    )
    run.add_argument(
        "--min-duration",
        default="1h",
        metavar="DURATION",
        help="the smallest spec.duration served; below it nothing is issued (1h)",
    )
    run.add_argument(
        "--min-renew-before",
        default="1m",
        metavar="DURATION",
        help="the smallest spec.renewBefore served (1m)",
    )
    run.add_argument(
        "--require-requester",
        action="store_true",
        help="read a Secret a certificate names only for a recorded, believed requester who may get it; a "
        "certificate without one is refused (RequesterUnknown). Default off in 0.2 (such Secrets are read as "
        "before, deprecated); on in 0.3",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging (never logs key material)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    return 2


def run(args: argparse.Namespace) -> int:
    import kopf

    from mtls_operator.kube.config import load_client_config
    from mtls_operator.kube.startup import wait_until_served
    from mtls_operator.runtime import composition, handlers
    from mtls_operator.runtime.memory import limit_arenas, tune_collector
    from mtls_operator.runtime.settings import Settings

    try:
        settings = Settings.from_args(args)
    except ValueError as exc:
        raise SystemExit(f"mtls-operator: {exc} (--shard-count {args.shard_count})") from None

    limit_arenas()  # before the first thread: see memory.py
    tune_collector()
    kopf.configure(verbose=settings.verbose)
    if not settings.verbose:
        # kopf logs every handled watch event at INFO: noise at 10,000 objects.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        # urllib3 warns once per retried connection: an apiserver outage is reported once by kube.health instead.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    load_client_config()
    wait_until_served(settings.probe_namespace)
    if settings.kubernetes_signer:
        handlers.register_csr_watch()
    operator = composition.build(settings)
    # Standalone: kopf's peering pauses kopf's own handlers but not our work queue (a split brain, seen with two
    # replicas); who acts is decided by the Lease (runtime.leader) instead.
    kopf.run(
        standalone=True,
        clusterwide=settings.namespaces is None,
        namespaces=settings.namespaces or [],
        memo=kopf.Memo(operator=operator),
        memories=handlers.ForgetfulMemories(),
    )
    _exit_without_waiting_for_cpu_work()
    return 0


def _exit_without_waiting_for_cpu_work() -> None:
    """The operator has stopped (its event loop is closed: nothing more is written to the API). A key generation or
    signature still running in a CpuPool thread has nobody to hand its result to, yet the interpreter's exit would
    join that thread, and an RSA-4096 key on a busy node takes seconds. Its key was never stored nor its CSR
    published, so it is dropped with the process."""
    from mtls_operator.aio.offload import pool_threads

    busy = pool_threads()
    if busy:
        logging.getLogger(__name__).info("stopped; %d CPU worker thread(s) left to end with the process", busy)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
