"""Runs the shipped Argo CD health script in a real Lua interpreter (lupa), the way Argo CD does: `obj` global."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa

ROOT = Path(__file__).resolve().parents[1]
CUSTOMIZATION = ROOT / "manifests" / "argocd" / "mtls.dev" / "MtlsCertificate"
SCRIPT = CUSTOMIZATION / "health.lua"


def health(obj: dict[str, Any]) -> dict[str, str]:
    """{"status": ..., "message": ...} for one MtlsCertificate object (as `kubectl get -o json` gives it)."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT.read_text())
    return {"status": str(result["status"]), "message": str(result["message"] or "")}
