"""The Grafana dashboard's queries through a real Prometheus, and the Argo CD health script on real objects.

One namespace holds certificates in every state a user meets (Ready, renewal waiting for the partner, first CSR
waiting, rejected imports, CA missing); the operator really runs, Prometheus really scrapes it, and every query
of the dashboard is evaluated through Prometheus' HTTP API with the dashboard's variables substituted.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from argocd_health import CUSTOMIZATION, health
from harness.cluster import (
    CA_SIGNER,
    ROOT,
    Kubectl,
    OperatorProcess,
    Partner,
    certificate_manifest,
    create_and_get_csr,
    http_get,
    put_signed,
    wait_for,
    wait_ready,
    wait_reason,
)

DASHBOARD = json.loads((ROOT / "manifests" / "grafana" / "mtls-certificates.json").read_text())
# name -> (expected Argo CD health, what the certificate is)
STATES = {
    "year": ("Healthy", "partner-signed for 365 days"),
    "twenty": ("Healthy", "partner-signed for 20 days: renewal started, new CSR waits for the partner"),
    "waiting": ("Progressing", "first CSR published, no signature yet"),
    "mismatch": ("Degraded", "import of a certificate for another key (KeyMismatch)"),
    "expired": ("Degraded", "import of an expired certificate (Expired)"),
    "internal": ("Healthy", "signed by the CA signer"),
    "noca": ("Degraded", "CA signer whose CA Secret does not exist (CANotFound)"),
}


@pytest.fixture(scope="module")
def fleet(
    kubectl: Kubectl, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    namespace = f"dash-{os.urandom(4).hex()}"
    kubectl.run("create", "namespace", namespace)
    partner = Partner(tmp_path_factory.mktemp("partner"))
    csrs = {name: create_and_get_csr(kubectl, namespace, name) for name in ("year", "twenty", "waiting", "mismatch")}
    csrs["expired"] = create_and_get_csr(kubectl, namespace, "expired")
    put_signed(kubectl, namespace, "year-signed", {"tls.crt": partner.sign(csrs["year"], days=365, out="y.crt")})
    put_signed(kubectl, namespace, "twenty-signed", {"tls.crt": partner.sign(csrs["twenty"], days=20, out="t.crt")})
    put_signed(kubectl, namespace, "mismatch-signed", {"tls.crt": partner.sign(partner.own_csr(), out="m.crt")})
    expired = partner.sign_with_dates(csrs["expired"], "20200101000000Z", "20200201000000Z")
    put_signed(kubectl, namespace, "expired-signed", {"tls.crt": expired})
    kubectl.run(
        "create", "secret", "tls", "internal-ca", "-n", namespace,
        f"--cert={partner.ca_crt}", f"--key={partner.ca_key}",
    )  # fmt: skip
    kubectl.apply(certificate_manifest("internal", spec=CA_SIGNER), namespace)
    kubectl.apply(
        certificate_manifest("noca", extra_spec="  signer:\n    ca:\n      secretName: missing-ca"), namespace
    )
    wait_ready(kubectl, namespace, "year")
    wait_ready(kubectl, namespace, "internal")
    wait_reason(kubectl, namespace, "mismatch", "KeyMismatch")
    wait_reason(kubectl, namespace, "expired", "Expired")
    wait_reason(kubectl, namespace, "noca", "CANotFound")
    wait_for(
        lambda: (
            (kubectl.get("mtlscertificate", "twenty", namespace) or {}).get("status", {}).get("phase") == "Renewing"
        ),
        what="twenty renewing",
    )
    objects = {name: kubectl.get("mtlscertificate", name, namespace) for name in STATES}
    yield namespace, {name: obj for name, obj in objects.items() if obj}


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    body = http_get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert body is not None, f"Prometheus did not answer the query {expr}"
    answer = json.loads(body)
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]  # type: ignore[no-any-return]


def substitute(expr: str, namespace: str, signer: str = ".*", job: str = "mtls-operator") -> str:
    for variable, value in (("$__rate_interval", "1m"), ("$namespace", namespace), ("$signer", signer), ("$job", job)):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown variable left in {expr}"
    return expr


def panel(title: str) -> dict[str, Any]:
    return next(p for p in DASHBOARD["panels"] if p["title"] == title)


def results(prometheus: str, namespace: str, title: str, ref: str = "A") -> list[dict[str, Any]]:
    target = next(t for t in panel(title)["targets"] if t["refId"] == ref)
    return query(prometheus, substitute(target["expr"], namespace))


def days_left(obj: dict[str, Any], now: float, field: str = "notAfter") -> float:
    not_after = datetime.datetime.strptime(obj["status"][field], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (not_after.timestamp() - now) / 86400


def test_every_dashboard_query_answers_what_the_objects_say(
    fleet: tuple[str, dict[str, dict[str, Any]]], prometheus: str
) -> None:
    namespace, objects = fleet
    wait_for(
        lambda: (
            len(query(prometheus, f'mtls_certificate_phase{{namespace="{namespace}"}}')) == len(STATES)
            and query(prometheus, f'increase(mtls_certificate_issued_total{{namespace="{namespace}"}}[1m])')
        ),
        timeout=60,
        what="every certificate scraped twice",
    )
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p.get("targets", [])]
    for expr in exprs:  # every query parses and runs, with the variables on "All" and on one value each
        query(prometheus, substitute(expr, ".*"))
        query(prometheus, substitute(expr, namespace, signer="manual"))

    by_phase = {
        r["metric"]["phase"]: float(r["value"][1]) for r in results(prometheus, namespace, "Certificates by phase")
    }
    assert by_phase == dict(collections.Counter(o["status"]["phase"] for o in objects.values()))
    assert by_phase["Renewing"] == 1 and by_phase["Ready"] == 2

    now = datetime.datetime.now(datetime.UTC).timestamp()
    in_service = {n: o for n, o in objects.items() if o["status"].get("notAfter")}
    assert set(in_service) == {"year", "twenty", "internal"}
    table_rows = {
        r["metric"]["name"]: r["metric"]["phase"] for r in results(prometheus, namespace, "Every certificate")
    }
    assert table_rows == {n: o["status"]["phase"] for n, o in objects.items()}
    table_days = {
        r["metric"]["name"]: float(r["value"][1]) for r in results(prometheus, namespace, "Every certificate", "B")
    }
    assert table_days.keys() == in_service.keys()
    for name, days in table_days.items():
        assert days == pytest.approx(days_left(in_service[name], now), abs=0.01), name
    assert 364 < table_days["year"] < 366 and 19 < table_days["twenty"] < 21
    awaiting = {r["metric"]["name"] for r in results(prometheus, namespace, "Every certificate", "C")}
    assert awaiting == {n for n, o in objects.items() if o["status"].get("csrPublishedTime")}
    assert {"waiting", "twenty"} <= awaiting

    soonest = float(results(prometheus, namespace, "Soonest expiry (days)")[0]["value"][1])
    assert soonest == pytest.approx(min(table_days.values()), abs=0.01)
    chain_days = [days_left(o, now, "chainNotAfter") for o in objects.values() if o["status"].get("chainNotAfter")]
    assert chain_days, "no certificate reports the CA it depends on"
    soonest_ca = float(results(prometheus, namespace, "Soonest CA expiry (days)")[0]["value"][1])
    assert soonest_ca == pytest.approx(min(chain_days), abs=0.01)
    renewing = results(prometheus, namespace, "Certificates inside the renewal window")
    assert [r["metric"]["name"] for r in renewing] == ["twenty"]
    assert float(renewing[0]["value"][1]) == pytest.approx(table_days["twenty"], abs=0.01)
    assert float(results(prometheus, namespace, "Inside the renewal window")[0]["value"][1]) == 1
    assert float(results(prometheus, namespace, "Not Ready")[0]["value"][1]) == 4  # waiting, mismatch, expired, noca
    bars = {r["metric"]["name"] for r in results(prometheus, namespace, "CSRs awaiting a signature (days)")}
    assert bars == awaiting
    failures = {r["metric"]["reason"] for r in results(prometheus, namespace, "Failures by reason")}
    assert {"KeyMismatch", "Expired", "CANotFound"} <= failures
    assert results(prometheus, namespace, "Issued and renewed")
    assert [float(r["value"][1]) for r in results(prometheus, namespace, "Operator up")] == [1.0]
    for title in ("Reconcile duration", "Event-loop lag", "API requests by verb"):
        assert results(prometheus, namespace, title), title


def test_dashboard_variables_list_real_label_values(
    fleet: tuple[str, dict[str, dict[str, Any]]], prometheus: str
) -> None:
    namespace, _ = fleet
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"] if v["type"] == "query"}
    wanted = {"namespace": {namespace}, "signer": {"manual", "ca"}, "job": {"mtls-operator"}}
    for name, values in wanted.items():
        definition = variables[name]["definition"]
        metric, label = definition.removeprefix("label_values(").removesuffix(")").split(", ")
        url = f"{prometheus}/api/v1/label/{label}/values?{urllib.parse.urlencode({'match[]': metric})}"
        found = wait_for(lambda url=url: json.loads(http_get(url) or b'{"data": []}')["data"], what=definition)
        assert values <= set(found), (name, found)


def test_argocd_health_of_real_objects(fleet: tuple[str, dict[str, dict[str, Any]]]) -> None:
    namespace, objects = fleet
    snapshots = os.environ.get("MTLS_UPDATE_ARGOCD_SNAPSHOTS") == "1"
    table = []
    for name, (expected, what) in STATES.items():
        result = health(objects[name])
        assert result["status"] == expected, (name, what, result)
        if snapshots:
            table.append(_snapshot(name, objects[name], result, what))
    twenty = health(objects["twenty"])["message"]
    assert "renewal waiting for the partner's signature" in twenty
    assert f"kubectl mtls csr waiting -n {namespace}" in health(objects["waiting"])["message"]
    assert health(objects["mismatch"])["message"].startswith("KeyMismatch: ")
    assert health(objects["noca"])["message"].startswith("CANotFound: CA Secret missing-ca")
    if snapshots:
        (CUSTOMIZATION / "health_test.yaml").write_text(yaml.safe_dump({"tests": table}, sort_keys=False))


def _snapshot(name: str, obj: dict[str, Any], result: dict[str, str], what: str) -> dict[str, Any]:
    """Writes the live object (without server noise) as Argo CD test data; returns its health_test.yaml row."""
    meta = obj["metadata"]
    kept = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": "default", "generation": meta.get("generation")},
        "spec": obj["spec"],
        "status": obj["status"],
    }
    text = yaml.safe_dump(kept, sort_keys=False).replace(meta["namespace"], "default")
    path = CUSTOMIZATION / "testdata" / f"{name}.yaml"
    path.write_text(f"# {what} (snapshot of a live object from the e2e suite)\n{text}")
    expected = health(yaml.safe_load(text))
    return {"healthStatus": expected, "inputPath": f"testdata/{name}.yaml"}
