"""The dashboard JSON has what Grafana needs to import it; its queries are tested against Prometheus in e2e."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DASHBOARD = json.loads((ROOT / "manifests" / "grafana" / "mtls-certificates.json").read_text())
PANELS = DASHBOARD["panels"]


def test_identity_fields() -> None:
    assert DASHBOARD["uid"] == "mtls-certificates"
    assert isinstance(DASHBOARD["schemaVersion"], int) and DASHBOARD["schemaVersion"] >= 36
    assert DASHBOARD["title"]


def test_panel_ids_unique_and_every_panel_placed() -> None:
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids))
    for p in PANELS:
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys(), p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]


def test_every_panel_and_target_has_the_datasource_variable() -> None:
    for p in PANELS:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["expr"].strip(), p["title"]


def test_variables_used_are_defined() -> None:
    defined = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert {"datasource", "namespace", "signer"} <= defined
    used = {m for p in PANELS for t in p.get("targets", []) for m in re.findall(r"\$(\w+)", t["expr"])}
    assert used - {"__rate_interval"} <= defined
    for v in DASHBOARD["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}" and v["includeAll"] and v["allValue"] == ".*"


def test_panels_the_issue_asks_for() -> None:
    titles = {p["title"] for p in PANELS}
    assert {
        "Certificates by phase",
        "Soonest expiry (days)",
        "Every certificate",
        "Inside the renewal window",
        "Certificates inside the renewal window",
        "CSRs awaiting a signature (days)",
        "Issued and renewed",
        "Failures by reason",
        "Reconcile duration",
        "Event-loop lag",
        "API requests by verb",
        "Operator up",
    } <= titles
