"""Prometheus metrics: per-certificate gauges rebuilt from each reconcile, counters, and operator health."""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics

from . import __version__

# No `*_created` series next to every counter: with 10,000 certificates they double the scrape for nothing.
disable_created_metrics()

LABELS = ("namespace", "name", "common_name", "signer")
CONDITION_STATES = ("True", "False", "Unknown")


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.expiration = Gauge(
            "mtls_certificate_expiration_timestamp_seconds",
            "notAfter of the certificate in service.",
            LABELS,
            registry=r,
        )
        self.not_before = Gauge(
            "mtls_certificate_not_before_timestamp_seconds",
            "notBefore of the certificate in service.",
            LABELS,
            registry=r,
        )
        self.renewal = Gauge(
            "mtls_certificate_renewal_timestamp_seconds",
            "When renewal starts (renewalTime).",
            LABELS,
            registry=r,
        )
        self.renewal_due = Gauge(
            "mtls_certificate_renewal_due",
            "1 while the certificate is inside its renewal window.",
            LABELS,
            registry=r,
        )
        self.ready = Gauge(
            "mtls_certificate_ready_status",
            "1 on the current status of the Ready condition.",
            (*LABELS, "condition"),
            registry=r,
        )
        self.awaiting_since = Gauge(
            "mtls_certificate_awaiting_signature_since_timestamp_seconds",
            "When the pending CSR was published; absent when nothing is pending.",
            LABELS,
            registry=r,
        )
        self.issued = Counter("mtls_certificate_issued", "Certificates put in service.", LABELS, registry=r)
        self.renewals = Counter("mtls_certificate_renewals", "Certificates renewed.", LABELS, registry=r)
        self.failures = Counter(
            "mtls_certificate_failures",
            "Failed reconciles or rejected certificates, by reason.",
            (*LABELS, "reason"),
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "mtls_operator_reconcile_duration_seconds",
            "Time of one reconcile.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.loop_lag = Histogram(
            "mtls_operator_event_loop_lag_seconds",
            "Scheduling delay of the asyncio event loop (sampled every 100 ms).",
            registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
        )
        self.keys_generated = Counter(
            "mtls_operator_private_keys_generated", "Private keys generated (a restart must not add any).", registry=r
        )
        self.api_requests = Counter(
            "mtls_operator_api_requests",
            "Kubernetes API requests made by the reconciler (not kopf's watches).",
            ("verb", "resource"),
            registry=r,
        )
        self.build_info = Info("mtls_operator_build", "Operator version.", registry=r)
        self.build_info.info({"version": __version__})
        self._series: dict[tuple[str, str], tuple[str, ...]] = {}

    def observe(self, body: Mapping[str, Any], events: list[tuple[str, str, str]]) -> None:
        """Sets every gauge of one certificate from its status, and counts what just happened."""
        meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
        signer = next(iter(spec.get("signer") or {"manual": {}}), "manual")
        labels = (meta["namespace"], meta["name"], spec.get("commonName", ""), signer)
        key = (meta["namespace"], meta["name"])
        if self._series.get(key) not in (None, labels):
            self.remove(*key)
        self._series[key] = labels
        for gauge, field in (
            (self.expiration, "notAfter"),
            (self.not_before, "notBefore"),
            (self.renewal, "renewalTime"),
            (self.awaiting_since, "csrPublishedTime"),
        ):
            value = _epoch(status.get(field))
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
            else:
                gauge.labels(*labels).set(value)
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        due = conditions.get("RenewalDue", {}).get("status") == "True"
        self.renewal_due.labels(*labels).set(1 if due else 0)
        ready = conditions.get("Ready", {}).get("status", "Unknown")
        for state in CONDITION_STATES:
            self.ready.labels(*labels, state).set(1 if state == ready else 0)
        for event_type, reason, _ in events:
            if reason == "Issued":
                self.issued.labels(*labels).inc()
            elif reason == "Renewed":
                self.issued.labels(*labels).inc()
                self.renewals.labels(*labels).inc()
            elif event_type == "Warning" and reason not in ("RenewalDue",):
                self.failures.labels(*labels, reason).inc()

    def remove(self, namespace: str, name: str) -> None:
        """Drops every series of a deleted MtlsCertificate."""
        labels = self._series.pop((namespace, name), None)
        if labels is None:
            return
        for metric in (
            self.expiration,
            self.not_before,
            self.renewal,
            self.renewal_due,
            self.awaiting_since,
            self.issued,
            self.renewals,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        for state in CONDITION_STATES:
            with contextlib.suppress(KeyError):
                self.ready.remove(*labels, state)
        for sample_labels in [
            s.labels for m in self.failures.collect() for s in m.samples if s.name.endswith("_total")
        ]:
            if (sample_labels["namespace"], sample_labels["name"]) == (namespace, name):
                with contextlib.suppress(KeyError):
                    self.failures.remove(*labels, sample_labels["reason"])
