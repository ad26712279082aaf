"""/metrics behind authentication, as the chart runs it: HTTPS on its own port, a TokenReview and a
SubjectAccessReview for `get` on the non-resource URL /metrics — on a real apiserver with real ServiceAccount
tokens, and scraped by a real Prometheus configured as the chart's ServiceMonitor configures it."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from harness.cluster import ROOT, OperatorProcess, free_port, helm, http_get, own_control_plane, wait_for


def scrape(port: int, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics", headers=headers)
    context = ssl._create_unverified_context()  # self-signed, as the chart's default (insecureSkipVerify)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_need_a_token_that_rbac_allows_and_prometheus_scrapes_with_one(tmp_path: Path) -> None:
    with own_control_plane(tmp_path / "plane") as (plane, kube):
        # The chart's NetworkPolicy, Service and metrics RBAC are what the apiserver accepts (a server-side dry run
        # validates them against its own schema).
        manifests = helm(plane.kubeconfig, "template", "mtls-operator", str(ROOT / "charts" / "mtls-operator"),
                         "-n", "default", "--set", "networkPolicy.enabled=true",
                         "--set", "networkPolicy.apiServer.cidrs={10.0.0.1/32}",
                         "--show-only", "templates/networkpolicy.yaml", "--show-only", "templates/service.yaml",
                         "--show-only", "templates/metrics-rbac.yaml").stdout  # fmt: skip
        assert "kind: NetworkPolicy" in manifests
        kube.run("apply", "--dry-run=server", "-f", "-", input=manifests)
        rendered = helm(plane.kubeconfig, "template", "mtls-operator", str(ROOT / "charts" / "mtls-operator"),
                        "--show-only", "templates/metrics-rbac.yaml").stdout  # fmt: skip
        reader = next(d for d in yaml.safe_load_all(rendered) if d and d["metadata"]["name"].endswith("-reader"))
        kube.run("apply", "-f", "-", input=yaml.safe_dump(reader))
        kube.run("create", "namespace", "monitoring")
        for sa in ("prometheus", "nosy"):
            kube.run("create", "serviceaccount", sa, "-n", "monitoring")
        kube.run("create", "clusterrolebinding", "prometheus-metrics", f"--clusterrole={reader['metadata']['name']}",
                 "--serviceaccount=monitoring:prometheus")  # fmt: skip
        tokens = {
            sa: kube.run("create", "token", sa, "-n", "monitoring").stdout.strip() for sa in ("prometheus", "nosy")
        }
        (tmp_path / "logs").mkdir()
        op = OperatorProcess(plane.kubeconfig, tmp_path / "logs", secure_metrics=True)
        op.start()
        try:
            port = op.secure_metrics_port
            assert port is not None
            status, body = scrape(port, None)
            assert status == 401 and "bearer token" in body
            assert scrape(port, "not-a-token")[0] == 401
            status, body = scrape(port, tokens["nosy"])
            assert status == 403 and "get on the non-resource URL /metrics" in body
            status, body = scrape(port, tokens["prometheus"])
            assert status == 200 and "mtls_operator_build_info" in body
            # The plain port keeps the probes and drops /metrics: nothing there for an unauthenticated reader.
            assert http_get(f"http://127.0.0.1:{op.metrics_port}/healthz") is not None
            assert http_get(f"http://127.0.0.1:{op.metrics_port}/metrics") is None
            assert "mtls_issuer" not in (http_get(f"http://127.0.0.1:{op.metrics_port}/readyz") or b"").decode()

            # A real Prometheus, as the ServiceMonitor configures it: https, bearer token file, insecureSkipVerify.
            binary = shutil.which("prometheus")
            assert binary, "prometheus is required (make deps)"
            (tmp_path / "token").write_text(tokens["prometheus"])
            prom_port = free_port()
            config = {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [{
                    "job_name": "mtls-operator", "scheme": "https",
                    "authorization": {"credentials_file": str(tmp_path / "token")},
                    "tls_config": {"insecure_skip_verify": True},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }],
            }  # fmt: skip
            (tmp_path / "prometheus.yml").write_text(json.dumps(config))
            prom = subprocess.Popen(
                [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:

                def up() -> bool:
                    raw = http_get(f"http://127.0.0.1:{prom_port}/api/v1/query?query=mtls_operator_build_info")
                    return bool(raw and json.loads(raw)["data"]["result"])

                wait_for(up, timeout=60, interval=1, what="Prometheus scrapes /metrics with its token")
            finally:
                prom.terminate()
                prom.wait(timeout=20)
        finally:
            op.stop()
