"""Every tunable of a running operator, one dataclass per concern, each value with its default and why.

Built once from the command line (`Settings.from_args`) by the composition root; nothing else reads flags. The
constants that a lower layer owns (the client's request timeout, the probe's timeout) are named here too, so this
page is the one list a user tuning the operator reads.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass, field

from mtls_operator.api.spec import parse_duration
from mtls_operator.kube.client import REQUEST_TIMEOUT
from mtls_operator.kube.health import ApiProbe
from mtls_operator.lifecycle.policy.floors import Floors
from mtls_operator.runtime.cpulimit import usable_cpus
from mtls_operator.runtime.leader import default_namespace
from mtls_operator.runtime.sharding import Shard


@dataclass(frozen=True)
class ApiSettings:
    # Concurrent Kubernetes API requests, one kept-alive connection each: 8 kept a 10,000-certificate initial sync
    # API-bound without queueing reconciles behind one another (bench P1).
    threads: int = 8
    # (connect, read): the apiserver answers within its own 60 s --request-timeout; a dead connection must not
    # hold a thread forever (kube.client).
    request_timeout: tuple[float, float] = REQUEST_TIMEOUT
    # /readyz notices an outage within this even when no reconcile is due.
    probe_interval_seconds: float = 5.0
    probe_timeout_seconds: float = ApiProbe.TIMEOUT_SECONDS


@dataclass(frozen=True)
class WorkSettings:
    # Reconciles in flight at once: enough to keep the API threads busy while some wait for key generation.
    concurrency: int = 32
    # Key generation threads (RSA is CPU-bound and releases the GIL): 0 means one per CPU the container may use,
    # its cgroup CPU limit rounded up (runtime.cpulimit), not the node's cores.
    cpu_threads: int = 0
    # A failed reconcile retries after 1 s, doubling up to 5 min (controller-runtime's defaults are alike).
    base_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0

    @property
    def key_threads(self) -> int:
        return self.cpu_threads or usable_cpus()


@dataclass(frozen=True)
class SecretCacheSettings:
    # Pages of the first list: one unpaginated list of 10,000 Secrets is tens of MB parsed at once.
    page_size: int = 500
    # Server-side watch timeout; the client waits 30 s longer before calling a silent watch dead.
    watch_seconds: int = 300


@dataclass(frozen=True)
class LeaderSettings:
    enabled: bool = False
    namespace: str | None = None  # None: the pod's own namespace (where the chart grants Lease access)
    name: str = "mtls-operator"
    # client-go's leaderelection defaults: a standby takes over within ~15 s of a holder's death.
    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0


@dataclass(frozen=True)
class HeapSettings:
    # After a wave of this many reconciles and Secret events, once the queue is idle, memory.settle_heap runs:
    # checked every 10 s so it never competes with the wave itself.
    check_interval_seconds: float = 10.0
    batch: int = 1000


@dataclass(frozen=True)
class HsmSettings:
    # The PKCS#11 libraries an issuer may name (spec.ca.pkcs11.module): nothing else is ever loaded, or anyone who
    # may create an MtlsIssuer could make the operator dlopen any library in its filesystem.
    modules: tuple[str, ...] = ()
    # A token-held CA key is probed (one signature, verified) this often: a token that goes away or comes back
    # changes the issuer's Ready without any Kubernetes event. 30 s is one cheap signature per issuer, and well
    # inside the time a renewal can wait.
    probe_seconds: float = 30.0
    # Token label -> the namespaces whose MtlsIssuers may use that token. Empty: tokens are for ClusterMtlsIssuers
    # only (made by cluster administrators); a tenant naming the cluster CA's token gets TokenNotAllowed before any
    # PIN reaches it, so it can neither lock that token's PIN nor log the cluster CA out.
    namespaced_tokens: dict[str, tuple[str, ...]] = field(default_factory=dict)


def parse_namespaced_tokens(values: list[str]) -> dict[str, tuple[str, ...]]:
    """`LABEL=NAMESPACE` flags (repeatable) -> label -> namespaces. Raises ValueError naming a malformed one."""
    tokens: dict[str, tuple[str, ...]] = {}
    for value in values:
        label, sep, namespace = value.partition("=")
        if not sep or not label.strip() or not namespace.strip():
            raise ValueError(f"--pkcs11-namespaced-token {value!r}: expected TOKEN_LABEL=NAMESPACE")
        tokens[label.strip()] = (*tokens.get(label.strip(), ()), namespace.strip())
    return tokens


@dataclass(frozen=True)
class Settings:
    namespaces: list[str] | None  # None: every namespace
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8080  # plain HTTP: /healthz, /readyz, the CRLs (and /metrics with insecure_metrics)
    # /metrics over HTTPS for a bearer token RBAC allows (runtime.metricsauth): the series name every tenant's
    # certificates and partners. Plain and open only when asked, as controller-runtime's secure metrics do.
    secure_metrics_port: int = 8443
    insecure_metrics: bool = False
    metrics_cert_dir: str | None = None  # tls.crt/tls.key of a mounted Secret; None: self-signed at start
    kubernetes_signer: bool = False  # its RBAC (cluster-scoped CertificateSigningRequests) is opt-in
    # Signer names a certificate may ask for (globs). Empty: any outside kubernetes.io/, whose built-in signers issue
    # credentials the cluster trusts and must each be listed (lifecycle.policy.signernames).
    kubernetes_signer_names: tuple[str, ...] = ()
    # Roll workloads annotated mtls.dev/rollout-on-rotation after a rotation: patching Deployments is RBAC a
    # certificate operator should not hold unless asked (runtime.rollout).
    roll_workloads: bool = False
    # Where every ClusterMtlsIssuer's CA Secret lives: one namespace, so the CA key is never copied into the teams'
    # namespaces (cert-manager's cluster resource namespace). The chart passes the release namespace.
    cluster_issuer_namespace: str = "mtls-system"
    # The ValidatingAdmissionPolicy (and binding, same name) that checks RBAC verb `use` on ClusterMtlsIssuers:
    # cluster issuers sign only while it is in force (lifecycle.policy.usepolicy). None: no such check (the chart
    # passes its policy's name when issuers.admissionPolicy.enabled). Looked at every 30 s: a deleted policy stops
    # cluster-issuer issuance within that, for two cheap GETs per replica.
    cluster_issuer_use_policy: str | None = None
    use_policy_check_seconds: float = 30.0
    # How long RBAC's answer (a SubjectAccessReview) for a requester stands — `use` of a cluster issuer, `get` of a
    # named Secret (lifecycle.accessreviews): a renewal wave asks once per requester and object, a revoked grant
    # bites within it.
    use_review_seconds: float = 60.0
    # Secrets a certificate names are read only for a believed requester who may get them (lifecycle.onbehalf); off:
    # a certificate without such a record has them read as before 0.2 (deprecated; the default flips in 0.3, when
    # every supported cluster can record requesters).
    require_requester: bool = False
    # The smallest spec.duration and spec.renewBefore served (lifecycle.policy.floors): an hour, so no object can
    # make the operator re-issue more than about once an hour by its spec; tests with 2-minute certificates lower it.
    floors: Floors = field(default_factory=Floors)
    verbose: bool = False
    shard: Shard = field(default_factory=Shard)
    api: ApiSettings = field(default_factory=ApiSettings)
    work: WorkSettings = field(default_factory=WorkSettings)
    secret_cache: SecretCacheSettings = field(default_factory=SecretCacheSettings)
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    heap: HeapSettings = field(default_factory=HeapSettings)
    hsm: HsmSettings = field(default_factory=HsmSettings)

    @property
    def secret_namespaces(self) -> list[str] | None:
        """The Secret informer's scope: the watched namespaces and the cluster issuers' CA namespace."""
        if self.namespaces is None:
            return None
        return self.namespaces + [ns for ns in [self.cluster_issuer_namespace] if ns not in self.namespaces]

    @property
    def probe_namespace(self) -> str | None:
        """Where the health probe lists MtlsCertificates: a namespace we may read (None: cluster-wide)."""
        return self.namespaces[0] if self.namespaces else None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Raises ValueError for an impossible combination (a shard index outside 0..count-1)."""
        index = args.shard_index
        if index is None:
            index = shard_index_from(socket.gethostname()) if args.shard_count > 1 else 0
        return cls(
            namespaces=None if args.all_namespaces else list(args.namespace),
            metrics_address=args.metrics_address,
            metrics_port=args.metrics_port,
            secure_metrics_port=args.secure_metrics_port,
            insecure_metrics=args.insecure_metrics,
            metrics_cert_dir=args.metrics_cert_dir,
            kubernetes_signer=args.kubernetes_signer,
            kubernetes_signer_names=tuple(args.kubernetes_signer_name),
            roll_workloads=args.roll_workloads,
            cluster_issuer_namespace=args.cluster_issuer_namespace or default_namespace(),
            cluster_issuer_use_policy=args.cluster_issuer_use_policy or None,
            use_policy_check_seconds=args.use_policy_check_seconds,
            use_review_seconds=args.use_review_seconds,
            require_requester=args.require_requester,
            floors=Floors(parse_duration(args.min_duration), parse_duration(args.min_renew_before)),
            verbose=args.verbose,
            shard=Shard(index, args.shard_count),
            api=ApiSettings(threads=args.api_threads),
            work=WorkSettings(cpu_threads=args.cpu_threads),
            leader=LeaderSettings(
                enabled=args.leader_elect, namespace=args.leader_election_namespace, name=args.leader_election_id
            ),
            hsm=HsmSettings(
                modules=tuple(args.pkcs11_module),
                probe_seconds=args.pkcs11_probe_seconds,
                namespaced_tokens=parse_namespaced_tokens(args.pkcs11_namespaced_token),
            ),
        )


def shard_index_from(hostname: str) -> int:
    """A StatefulSet pod is named <set>-<ordinal>."""
    ordinal = hostname.rsplit("-", 1)[-1]
    return int(ordinal) if ordinal.isdigit() else 0
