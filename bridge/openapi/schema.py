"""What every part of the document is built from: a JSON object, a reference to a
component, a JSON content map."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]


def ref(kind: str, name: str) -> Schema:
    """A reference to components/KIND/NAME."""
    return {"$ref": f"#/components/{kind}/{name}"}


def json_content(schema: Schema) -> Schema:
    """A content map with one application/json entry."""
    return {"application/json": {"schema": schema}}
