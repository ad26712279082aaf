"""Would HEAD's CRD reject or prune an object the previous release's CRD accepted? A static comparison of the two
structural schemas, version by version, that names each breaking change: a removed (pruned) field, a changed type,
a narrowed enum, a tightened bound or pattern, a new required field without a default, a new or changed CEL rule on
what existed before, a version no longer served. A new rule is allowed when it is guarded by a field that did not
exist (`has(self.<new field>)`): no old object can have that field, so none is newly rejected; and so is an old
rule widened by a disjunction (`<old rule> || <more>`, the old rule without a ternary): whatever passed it passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

Schema = Mapping[str, Any]
_LOWER_BOUNDS = ("minimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "maxLength", "maxItems", "maxProperties")


def breaking_changes(old_crd: Mapping[str, Any], new_crd: Mapping[str, Any]) -> list[str]:
    old_versions = {v["name"]: v for v in old_crd["spec"]["versions"] if v.get("served", True)}
    new_versions = {v["name"]: v for v in new_crd["spec"]["versions"] if v.get("served", True)}
    problems = []
    for name, old in old_versions.items():
        new = new_versions.get(name)
        if new is None:
            problems.append(f"version {name} is no longer served (a new version needs a conversion path)")
            continue
        old_schema, new_schema = old["schema"]["openAPIV3Schema"], new["schema"]["openAPIV3Schema"]
        problems += [f"{name}: {p}" for p in _compare(old_schema, new_schema, "")]
    return problems


def _compare(old: Schema, new: Schema, path: str) -> Iterator[str]:
    where = path or "."
    if old.get("type") != new.get("type"):
        yield f"{where}: type {old.get('type')} became {new.get('type')}"
        return
    if old.get("x-kubernetes-preserve-unknown-fields") and not new.get("x-kubernetes-preserve-unknown-fields"):
        yield f"{where}: unknown fields were kept and are now pruned"
    if "enum" in new and not set(old.get("enum", new["enum"])) <= set(new["enum"]):
        lost = sorted(set(old.get("enum", [])) - set(new["enum"]))
        yield f"{where}: enum lost {lost}" if lost else f"{where}: enum added where any value was accepted"
    if new.get("pattern") is not None and new.get("pattern") != old.get("pattern"):
        yield f"{where}: pattern {old.get('pattern')!r} became {new['pattern']!r}"
    for bound in _LOWER_BOUNDS:
        if bound in new and (bound not in old or new[bound] > old[bound]):
            yield f"{where}: {bound} raised to {new[bound]} (was {old.get(bound)})"
    for bound in _UPPER_BOUNDS:
        if bound in new and (bound not in old or new[bound] < old[bound]):
            yield f"{where}: {bound} lowered to {new[bound]} (was {old.get(bound)})"
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    added = set(new_props) - set(old_props)
    for field in sorted(set(new.get("required") or []) - set(old.get("required") or [])):
        if "default" not in new_props.get(field, {}):
            yield f"{where}: {field} is newly required (without a default)"
    yield from _rules(old, new, where, added)
    for field, old_field in old_props.items():
        if field not in new_props:
            if not new.get("x-kubernetes-preserve-unknown-fields"):
                yield f"{path}.{field}: removed (the apiserver now prunes it from every object)"
            continue
        yield from _compare(old_field, new_props[field], f"{path}.{field}")
    if "items" in old and "items" in new:
        yield from _compare(old["items"], new["items"], f"{path}[]")


def _rules(old: Schema, new: Schema, where: str, added_fields: set[str]) -> Iterator[str]:
    old_rules = {r["rule"] for r in old.get("x-kubernetes-validations") or []}
    for rule in (r["rule"] for r in new.get("x-kubernetes-validations") or []):
        if rule in old_rules:
            continue
        if any(rule.startswith(f"{old} ||") and "?" not in old for old in old_rules):
            continue  # old => new: only more objects are accepted
        guards = set(re.findall(r"has\(self\.([A-Za-z0-9_]+)\)", rule))
        if guards & added_fields and re.search(r"^\s*!?\(?\s*!?\s*has\(self\.", rule):
            continue
        yield f"{where}: a new CEL rule on fields that existed before: {rule}"
