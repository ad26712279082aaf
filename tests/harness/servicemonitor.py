"""A ServiceMonitor, as prometheus-operator would turn it into a scrape, for a plane without prometheus-operator.

The node planes cannot run prometheus-operator (no image registry), so the tests do its part for the few fields the
chart sets: the real ServiceMonitor CRD (from prometheus-operator's Go module, through the Go module proxy, cached)
validates what the chart creates; `scrape_config` turns a live ServiceMonitor into Prometheus' configuration the
way prometheus-operator does for those fields (the Service its selector matches, the endpoint port by name, scheme,
bearer token, TLS settings); a real Prometheus scrapes the Pods with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.cluster import TOOLS_BIN, Kubectl

PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.88.0"  # served by the Go module proxy here (newer ones were refused on 2026-12-07)
CRD_MEMBER = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
IN_POD_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def servicemonitor_crd() -> Path:
    """prometheus-operator's ServiceMonitor CRD, from its module zip (downloaded once into the tools cache)."""
    target = TOOLS_BIN.parent / f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}" / Path(CRD_MEMBER).name
    if target.exists():
        return target
    gopath = TOOLS_BIN.parent / "gopath"
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"],
        capture_output=True,
        text=True,
        cwd=TOOLS_BIN.parent,
        env={**os.environ, "GOPATH": str(gopath), "GOFLAGS": "-modcacherw", "GO111MODULE": "on"},
    )
    found = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "Zip" not in found:
        raise AssertionError(f"cannot download {PROMETHEUS_OPERATOR}: {found.get('Error') or proc.stderr}")
    with zipfile.ZipFile(found["Zip"]) as archive:
        data = archive.read(f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}/{CRD_MEMBER}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def scrape_config(kubectl: Kubectl, namespace: str, name: str, token_file: Path) -> dict[str, Any]:
    """Prometheus' scrape job for ServiceMonitor `name`: one target per ready address of the matched Services'
    port named by the endpoint. `token_file` holds the token Prometheus' own ServiceAccount would present (the
    ServiceMonitor names the in-Pod path; the test has none)."""
    monitor = kubectl.get("servicemonitor", name, namespace)
    assert monitor is not None, f"ServiceMonitor {namespace}/{name} does not exist"
    [endpoint] = monitor["spec"]["endpoints"]  # the chart's has one
    selector = ",".join(f"{k}={v}" for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    services = json.loads(kubectl.run("get", "services", "-n", namespace, "-l", selector, "-o", "json").stdout)
    targets = []
    for service in services["items"]:
        slices = json.loads(
            kubectl.run("get", "endpointslices", "-n", namespace, "-l",
                        f"kubernetes.io/service-name={service['metadata']['name']}", "-o", "json").stdout
        )  # fmt: skip
        for piece in slices["items"]:
            ports = [p["port"] for p in piece.get("ports") or [] if p.get("name") == endpoint["port"]]
            for address in piece.get("endpoints") or []:
                if (address.get("conditions") or {}).get("ready", True):
                    targets += [f"{ip}:{port}" for ip in address["addresses"] for port in ports]
    job: dict[str, Any] = {
        "job_name": f"serviceMonitor/{namespace}/{name}/0",
        "scrape_interval": "1s",  # the ServiceMonitor's interval, shortened for the test
        "scheme": endpoint.get("scheme", "http"),
        "static_configs": [{"targets": sorted(targets)}],
    }
    if endpoint.get("bearerTokenFile"):
        assert endpoint["bearerTokenFile"] == IN_POD_TOKEN, endpoint
        job["authorization"] = {"credentials_file": str(token_file)}
    tls = endpoint.get("tlsConfig") or {}
    if tls:
        job["tls_config"] = {"insecure_skip_verify": bool(tls.get("insecureSkipVerify"))}
        if tls.get("serverName"):
            job["tls_config"]["server_name"] = tls["serverName"]
    return {"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}


@contextlib.contextmanager
def prometheus_in_netns(plane: Any, config: dict[str, Any], workdir: Path) -> Iterator[Callable[[str], list[Any]]]:
    """A real Prometheus inside the plane's network namespace (where Pod IPs are), scraping with `config`; yields
    a function running an instant query there and returning its result vector."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is required (Debian package prometheus; `make deps` installs it)"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus.yml").write_text(json.dumps(config))
    address = "127.0.0.1:9090"  # the plane's own loopback: nothing else listens there
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        plane.in_netns(binary, f"--config.file={workdir / 'prometheus.yml'}",
                       f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={address}"),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def query(expression: str) -> list[Any]:
        url = f"http://{address}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
        done = subprocess.run(plane.in_netns(sys.executable, "-c", fetch), capture_output=True, text=True)
        return list(json.loads(done.stdout)["data"]["result"]) if done.returncode == 0 else []

    try:
        yield query
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
