"""Prometheus metrics: per-certificate gauges rebuilt from each reconcile, counters, and operator health."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from mtls_operator import __version__
from mtls_operator.api.refs import IssuerKey
from mtls_operator.api.spec import common_name_of_body, signer_kind_of
from mtls_operator.api.status import ConditionType, find_condition, parse_time

# No `*_created` series next to every counter: with 10,000 certificates they double the scrape for nothing.
disable_created_metrics()

LABELS = ("namespace", "name", "common_name", "signer")
CONDITION_STATES = ("True", "False", "Unknown")


def _epoch(text: str | None) -> float | None:
    moment = parse_time(text)
    return None if moment is None else moment.timestamp()


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class CertificateSeries:
    """Every per-certificate value, kept as plain numbers and written out by hand at scrape time.

    prometheus_client keeps a child object (with a lock) per label set: for 10,000 certificates that is
    about 60 MB and a five-second scrape; formatting these records takes a few tens of milliseconds.
    """

    labels: str  # preformatted namespace="…",name="…",common_name="…",signer="…"
    gauges: dict[str, float] = field(default_factory=dict)
    ready: str = "Unknown"
    phase: str = "Unknown"
    issued: int = 0
    renewals: int = 0
    failures: dict[str, int] = field(default_factory=dict)


GAUGES = (
    ("mtls_certificate_expiration_timestamp_seconds", "notAfter", "notAfter of the certificate in service."),
    ("mtls_certificate_not_before_timestamp_seconds", "notBefore", "notBefore of the certificate in service."),
    ("mtls_certificate_renewal_timestamp_seconds", "renewalTime", "When renewal starts (renewalTime)."),
    (
        "mtls_certificate_chain_expiration_timestamp_seconds",
        "chainNotAfter",
        "The soonest notAfter of the CAs the certificate depends on: its intermediates and ca.crt (a partner's CA "
        "included); absent when the Secret holds no CA.",
    ),
    (
        "mtls_certificate_awaiting_signature_since_timestamp_seconds",
        "csrPublishedTime",
        "When the pending CSR was published; absent when nothing is pending.",
    ),
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconcile_duration = Histogram(
            "mtls_operator_reconcile_duration_seconds", "Time of one reconcile.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.loop_lag = Histogram(
            "mtls_operator_event_loop_lag_seconds", "Event-loop scheduling delay (sampled every 100 ms).",
            registry=r, buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
        )  # fmt: skip
        self.keys_generated = Counter(
            "mtls_operator_private_keys_generated", "Private keys generated (a restart must not add any).", registry=r
        )
        self.api_requests = Counter(
            "mtls_operator_api_requests", "Kubernetes API requests made by the reconciler (not kopf's watches).",
            ("verb", "resource"), registry=r,
        )  # fmt: skip
        self.leader = Gauge(
            "mtls_operator_leader",
            "1 while this process reconciles (holds the Lease, or runs alone); 0 on standby.",
            registry=r,
        )
        self.leader.set(1)
        self.shards = Gauge(
            "mtls_operator_shards",
            "Shard count this process was started with (--shard-count), labelled with its own --shard-index: "
            "fewer distinct indexes than the value means a shard is missing.",
            ("index",),
            registry=r,
        )
        self.secret_relists = Counter(
            "mtls_operator_secret_relists",
            "Full lists of a Secret stream after the first (410 Gone: its resourceVersion was too old).",
            registry=r,
        )
        self.cached_secrets = Gauge(
            "mtls_operator_cached_secrets",
            "Secrets in the informer's cache: `object` kept whole (ours, this shard), `version` by resourceVersion "
            "only (everyone else's).",
            ("kind",),
            registry=r,
        )
        issuer_labels = ("kind", "namespace", "name")
        self.issuer_ca_expiration = Gauge(
            "mtls_issuer_ca_expiration_timestamp_seconds",
            "notAfter of an MtlsIssuer's or ClusterMtlsIssuer's CA certificate (namespace empty: cluster issuer).",
            issuer_labels, registry=r,
        )  # fmt: skip
        self.issuer_ready = Gauge(
            "mtls_issuer_ready", "1 while the issuer can sign (Ready=True), else 0.", issuer_labels, registry=r
        )
        self.issuer_certificates = Gauge(
            "mtls_issuer_certificates", "Certificates that name the issuer (of this shard).", issuer_labels, registry=r
        )
        self.issuer_crl_next_update = Gauge(
            "mtls_issuer_crl_next_update_timestamp_seconds",
            "nextUpdate of the CRL the issuer published last; it is signed again at half its lifetime.",
            issuer_labels, registry=r,
        )  # fmt: skip
        self.issuer_crl_this_update = Gauge(
            "mtls_issuer_crl_this_update_timestamp_seconds",
            "thisUpdate (signing time) of the CRL the issuer published last.",
            issuer_labels, registry=r,
        )  # fmt: skip
        self.issuer_revoked = Gauge(
            "mtls_issuer_revoked_certificates",
            "Serial numbers the issuer's published CRL lists.",
            issuer_labels, registry=r,
        )  # fmt: skip
        self.issuer_on_previous_ca = Gauge(
            "mtls_issuer_certificates_on_previous_ca",
            "Certificates in service that the issuer's current CA did not sign: during a CA rotation, those not "
            "re-issued yet.",
            issuer_labels, registry=r,
        )  # fmt: skip
        self.build_info = Info("mtls_operator_build", "Operator version.", registry=r)
        self.build_info.info({"version": __version__})
        self.certificates: dict[tuple[str, str], CertificateSeries] = {}
        self._cache_counts: Callable[[], Mapping[str, int]] | None = None

    def count_request(self, verb: str, resource: str) -> None:
        self.api_requests.labels(verb, resource).inc()

    def observe(self, body: Mapping[str, Any], events: list[tuple[str, str, str]]) -> None:
        """Sets every value of one certificate from its status, and counts what just happened."""
        meta, status = body["metadata"], body.get("status") or {}
        values = (meta["namespace"], meta["name"], common_name_of_body(body), signer_kind_of(body))
        labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in zip(LABELS, values, strict=True))
        key = (sys.intern(meta["namespace"]), meta["name"])
        series = self.certificates.get(key)
        if series is None or series.labels != labels:
            series = self.certificates[key] = CertificateSeries(labels)
        series.gauges = {name: value for name, field_, _ in GAUGES if (value := _epoch(status.get(field_))) is not None}
        renewal_due = find_condition(status, ConditionType.RENEWAL_DUE)
        series.gauges["mtls_certificate_renewal_due"] = 1.0 if renewal_due.get("status") == "True" else 0.0
        series.ready = find_condition(status).get("status", "Unknown")
        series.phase = str(status.get("phase") or "Unknown")
        for event_type, reason, _ in events:
            if reason == "Issued":
                series.issued += 1
            elif reason == "Renewed":
                series.issued += 1
                series.renewals += 1
            elif event_type == "Warning" and reason != "RenewalDue":
                series.failures[reason] = series.failures.get(reason, 0) + 1

    def set_shard(self, index: int, count: int) -> None:
        self.shards.clear()
        self.shards.labels(str(index)).set(count)

    def set_leader(self, leader: bool) -> None:
        """A standby reports no certificates: across replicas, every certificate is counted once."""
        self.leader.set(1 if leader else 0)
        if not leader:
            self.certificates.clear()

    def remove(self, namespace: str, name: str) -> None:
        """Drops every series of a deleted MtlsCertificate."""
        self.certificates.pop((namespace, name), None)

    def observe_issuer(self, key: IssuerKey, status: Mapping[str, Any]) -> None:
        labels = (key.kind, key.namespace, key.name)
        not_after = _epoch((status.get("ca") or {}).get("notAfter"))
        if not_after is None:
            with contextlib.suppress(KeyError):
                self.issuer_ca_expiration.remove(*labels)
        else:
            self.issuer_ca_expiration.labels(*labels).set(not_after)
        self.issuer_ready.labels(*labels).set(1.0 if find_condition(status).get("status") == "True" else 0.0)
        self.issuer_certificates.labels(*labels).set(float(status.get("certificates") or 0))
        self.issuer_on_previous_ca.labels(*labels).set(float(status.get("certificatesOnPreviousCA") or 0))
        crl = status.get("crl") or {}
        for gauge, value in (
            (self.issuer_crl_next_update, _epoch(crl.get("nextUpdate"))),
            (self.issuer_crl_this_update, _epoch(crl.get("thisUpdate"))),
            (self.issuer_revoked, float(crl["revokedCertificates"]) if "revokedCertificates" in crl else None),
        ):
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
            else:
                gauge.labels(*labels).set(value)

    def remove_issuer(self, key: IssuerKey) -> None:
        for gauge in (
            self.issuer_ca_expiration,
            self.issuer_ready,
            self.issuer_certificates,
            self.issuer_on_previous_ca,
            self.issuer_crl_next_update,
            self.issuer_crl_this_update,
            self.issuer_revoked,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(key.kind, key.namespace, key.name)

    def watch_cache(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._cache_counts = counts

    def exposition(self) -> bytes:
        """The whole scrape in the Prometheus text format (0.0.4)."""
        if self._cache_counts is not None:
            for kind, value in self._cache_counts().items():
                self.cached_secrets.labels(kind).set(value)
        return generate_latest(self.registry) + self._certificate_exposition().encode()

    def _certificate_exposition(self) -> str:
        rows = list(self.certificates.values())
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

        for name, _, help_text in GAUGES:
            family(name, "gauge", help_text)
            out.extend(f"{name}{{{r.labels}}} {r.gauges[name]}\n" for r in rows if name in r.gauges)
        family("mtls_certificate_renewal_due", "gauge", "1 while the certificate is inside its renewal window.")
        out.extend(
            f"mtls_certificate_renewal_due{{{r.labels}}} {r.gauges['mtls_certificate_renewal_due']}\n" for r in rows
        )
        family("mtls_certificate_ready_status", "gauge", "1 on the current status of the Ready condition.")
        for state in CONDITION_STATES:
            out.extend(
                f'mtls_certificate_ready_status{{{r.labels},condition="{state}"}} {1.0 if r.ready == state else 0.0}\n'
                for r in rows
            )
        # Only the current phase (value 1), not one series per possible phase: dashboards count with
        # `sum by (phase)`, and 10,000 certificates cost 10,000 series instead of 70,000.
        family("mtls_certificate_phase", "gauge", "1 for the current status.phase of the certificate.")
        out.extend(f'mtls_certificate_phase{{{r.labels},phase="{_label_value(r.phase)}"}} 1.0\n' for r in rows)
        family("mtls_certificate_issued_total", "counter", "Certificates put in service.")
        out.extend(f"mtls_certificate_issued_total{{{r.labels}}} {float(r.issued)}\n" for r in rows)
        family("mtls_certificate_renewals_total", "counter", "Certificates renewed.")
        out.extend(f"mtls_certificate_renewals_total{{{r.labels}}} {float(r.renewals)}\n" for r in rows)
        family("mtls_certificate_failures_total", "counter", "Failed reconciles or rejected certificates, by reason.")
        out.extend(
            f'mtls_certificate_failures_total{{{r.labels},reason="{reason}"}} {float(n)}\n'
            for r in rows
            for reason, n in r.failures.items()
        )
        return "".join(out)
