"""`make soak`: does memory stay flat while certificates keep renewing?

The operator freezes its long-lived heap out of the garbage collector's sight (memory.settle_heap): a reference
cycle frozen that way and dropped later is never collected. Other leaks (a cache keyed by something that only
grows, a series per old revision) show the same way: RSS that climbs with every renewal. This runs N certificates
of the CA signer with duration 4m / renewBefore 3m (each renews about once a minute) for M minutes against the real
control plane, samples the operator's RSS every 30 s after a warm-up, and reports the growth per 1,000 renewals.
Writes bench/results/soak.{json,md}; exits 1 when RSS grew by more than the bound per 1,000 renewals.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from run import ROOT, Cluster, certificate, environment, ready, rss_mb, scrape  # the benchmark's helpers

from harness.cluster import OperatorProcess, Partner

SHORT = {"duration": "4m", "renewBefore": "3m"}
GROWTH_BOUND_MB_PER_1000 = 2.0  # a leak of 2 KB per renewal; RSS noise over a run is ±1-2 MB


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per hour."""
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return 3600 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0


def soak(cluster: Cluster, operator: OperatorProcess, partner: Partner, count: int, minutes: float) -> dict[str, Any]:
    ns = cluster.namespace("soak")
    cluster.kubectl.run(
        "create", "secret", "tls", "ca", "-n", ns, f"--cert={partner.ca_crt}", f"--key={partner.ca_key}"
    )
    bodies = [certificate(f"s{i}", {"ca": {"secretName": "ca"}}) for i in range(count)]
    for body in bodies:
        body["spec"].update(SHORT)
    cluster.create_many(ns, bodies)
    cluster.wait_all(ns, count, ready, timeout=600)
    assert operator.proc is not None
    pid = operator.proc.pid
    # Warm-up: every certificate renews several times and the heap settles, so the window starts at steady state
    # (measured: RSS rises ~10 MB over the first 7 minutes at 300 certificates, then stays flat).
    warmup = min(420.0, minutes * 60 / 3)
    print(f"soak: {count} certificates Ready; warming up {warmup:.0f} s", flush=True)
    time.sleep(warmup)
    started = time.monotonic()
    renewals_at_start = scrape(operator).get("mtls_certificate_renewals_total", 0.0)
    samples: list[tuple[float, float]] = []
    while True:
        elapsed = time.monotonic() - started
        samples.append((elapsed, rss_mb(pid)))
        if elapsed >= minutes * 60 - warmup:
            break
        time.sleep(30)
    metrics = scrape(operator)
    renewals = metrics.get("mtls_certificate_renewals_total", 0.0) - renewals_at_start
    slope = slope_per_hour(samples)
    hours = samples[-1][0] / 3600
    per_1000 = 1000 * slope * hours / renewals if renewals else 0.0
    return {
        "certificates": count,
        "window_seconds": round(samples[-1][0]),
        "renewals": renewals,
        "renewals_per_minute": 60 * renewals / samples[-1][0] if samples[-1][0] else 0.0,
        "rss_first_mb": samples[0][1],
        "rss_last_mb": samples[-1][1],
        "rss_max_mb": max(s[1] for s in samples),
        "slope_mb_per_hour": slope,
        "growth_mb_per_1000_renewals": per_1000,
        "bound_mb_per_1000_renewals": GROWTH_BOUND_MB_PER_1000,
        "keys_generated": metrics.get("mtls_operator_private_keys_generated_total", 0.0),
        "samples": samples,
    }


def markdown(result: dict[str, Any]) -> str:
    s = result["soak"]
    verdict = "met" if s["growth_mb_per_1000_renewals"] <= s["bound_mb_per_1000_renewals"] else "missed"
    if result["mode"] == "quick":
        verdict = "not judged in quick mode"
    return (
        f"Measured {result['date']} ({result['mode']} mode).\n\n"
        "| | |\n| --- | --- |\n"
        f"| certificates (CA signer, duration 4m, renewBefore 3m) | {s['certificates']} |\n"
        f"| window after warm-up | {s['window_seconds']} s, {s['renewals']:.0f} renewals "
        f"({s['renewals_per_minute']:.0f}/min) |\n"
        f"| RSS first / last / max | {s['rss_first_mb']:.1f} / {s['rss_last_mb']:.1f} / {s['rss_max_mb']:.1f} MB |\n"
        f"| RSS slope | {s['slope_mb_per_hour']:+.1f} MB/h |\n"
        f"| growth per 1,000 renewals | {s['growth_mb_per_1000_renewals']:+.2f} MB "
        f"(bound ≤ {s['bound_mb_per_1000_renewals']} MB: {verdict}) |\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certificates", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--quick", action="store_true", help="50 certificates for 5 minutes: does it run (no verdict)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    count, minutes = (50, 5.0) if args.quick else (args.certificates, args.minutes)
    with environment("Soak CA") as (cluster, partner, operator):
        operator.start()
        result: dict[str, Any] = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "mode": "quick" if args.quick else "full",
            "soak": soak(cluster, operator, partner, count, minutes),
        }
    text = markdown(result)
    if not args.quick:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "soak.md").write_text(text)
    print(text)
    # Quick: too short to warm up (RSS still rises for the first 7 minutes), so it shows that it runs, not a verdict.
    return 0 if args.quick or result["soak"]["growth_mb_per_1000_renewals"] <= GROWTH_BOUND_MB_PER_1000 else 1


if __name__ == "__main__":
    sys.exit(main())
