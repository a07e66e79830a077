"""Validate a JSON document against the schema file the package ships for its command."""

from __future__ import annotations

import json
from importlib import resources


def validate(doc: dict) -> None:
    """Raise jsonschema.ValidationError unless ``doc`` matches ``lstm_inspect/schemas/<command>.json``."""
    import jsonschema
    from referencing import Registry, Resource

    folder = resources.files("lstm_inspect") / "schemas"
    schemas = {p.name: json.loads(p.read_text()) for p in folder.iterdir() if p.name.endswith(".json")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values()
    )
    command = doc["schema"].split(".", 1)[1].split("/", 1)[0]
    jsonschema.Draft202012Validator(schemas[f"{command}.json"], registry=registry).validate(doc)


def schema_names() -> set[str]:
    """Commands that have a schema file."""
    folder = resources.files("lstm_inspect") / "schemas"
    return {p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json") and not p.name.startswith("_")}
