"""The JSON Schemas in crashkit/schema, for tests: load one by its id, and find
keys an output has that its schema does not document."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "crashkit" / "schema"


@cache
def schema(schema_id: str) -> dict[str, Any]:
    """crashkit/<name>/<version> -> crashkit/schema/<name>-<version>.json"""
    _, name, version = schema_id.split("/")
    data: dict[str, Any] = json.loads((SCHEMAS / f"{name}-{version}.json").read_text())
    return data


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema node and its alternatives (oneOf/anyOf/allOf), $refs followed."""
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _resolve(target, root)
    out = [node]
    for key in ("oneOf", "anyOf", "allOf"):
        for alt in node.get(key, ()):
            out += _resolve(alt, root)
    return out


def undocumented(data: Any, root: dict[str, Any], node: dict[str, Any] | None = None,
                 where: str = "") -> list[str]:
    """Paths of object keys in ``data`` that no schema node at that place
    documents (objects whose schema lists no properties are free-form maps)."""
    nodes = _resolve(root if node is None else node, root)
    out: list[str] = []
    if isinstance(data, dict):
        props: dict[str, Any] = {}
        for n in nodes:
            props.update(n.get("properties", {}))
        free = not props or any(isinstance(n.get("additionalProperties"), dict)
                                or "patternProperties" in n for n in nodes)
        for key, value in data.items():
            if key in props:
                out += undocumented(value, root, props[key], f"{where}.{key}")
            elif not free:
                out.append(f"{where}.{key}")
    elif isinstance(data, list):
        items = [n["items"] for n in nodes if isinstance(n.get("items"), dict)]
        for i, value in enumerate(data):
            for it in items[:1]:
                out += undocumented(value, root, it, f"{where}[{i}]")
    return out


def enum_at(root: dict[str, Any], *path: str) -> list[Any]:
    """The enum of the schema node at ``path`` (property names; "[]" for array
    items), through $refs and alternatives."""
    nodes = _resolve(root, root)
    for part in path:
        nxt: list[dict[str, Any]] = []
        for n in nodes:
            child = n.get("items") if part == "[]" else n.get("properties", {}).get(part)
            if isinstance(child, dict):
                nxt += _resolve(child, root)
        nodes = nxt
    for n in nodes:
        if "enum" in n:
            return list(n["enum"])
    raise KeyError("/".join(path))
