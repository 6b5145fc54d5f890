"""The JSON schemas a chat request sends (tools' parameters, ``response_format``): bounded
first (``SchemaBudget``), then checked against their draft's meta-schema.

The meta-schema check is slow in pure Python (about a millisecond per property), so its
verdicts are cached by the schema's canonical JSON (clients send the same tools with
every request) and the server runs it off the event loop. A ``$schema`` must name a
draft this server knows: an unknown one would otherwise be guessed at, or fetched.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import orjson

from ._errors import APIError
from ._limits import SchemaBudget
from ._openai_models import ChatCompletionRequest


def check_request_schemas(body: ChatCompletionRequest, budget: SchemaBudget) -> None:
    """Bound every schema of the request (each tool counts one value more), then check
    the response format's schema; the tools' are checked one by one as they are read.

    Raises:
        APIError: 400 naming the schema that is too large, too deep or invalid.
    """
    for i, t in enumerate(body.tools or []):
        budget.charge(f"tools[{i}].function.parameters", t.function.parameters or {}, extra=1)
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        where = "response_format.json_schema.schema"
        budget.charge(where, fmt.json_schema.schema_)
        problem = schema_problem(canonical(fmt.json_schema.schema_), require_object=False)
        if problem is not None:
            raise APIError(400, f"{where}: {problem}", param=where, code="invalid_value")


def canonical(schema: dict[str, Any]) -> bytes:
    """The schema's JSON with sorted keys (its cache key). Bounded depth (``SchemaBudget``)
    keeps it within orjson's recursion limit."""
    return orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)


@functools.lru_cache(maxsize=1024)
def schema_problem(schema_json: bytes, *, require_object: bool) -> str | None:
    """Why a schema is not a usable JSON schema (of an object, for tool parameters), or
    None if it is one."""
    schema = orjson.loads(schema_json)
    if require_object and schema.get("type", "object") != "object":
        return f"must be a schema of type 'object', got type {schema.get('type')!r}"
    declared = schema.get("$schema")
    cls = _DRAFTS.get(declared.rstrip("#")) if isinstance(declared, str) else None
    if "$schema" in schema and cls is None:
        known = ", ".join(sorted(_DRAFTS))
        return f"$schema {declared!r} is not a JSON Schema draft this server knows ({known})"
    cls = cls or jsonschema.Draft202012Validator
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = ".".join(str(p) for p in exc.path)
        return f"not a valid JSON schema ({path + ': ' if path else ''}{exc.message})"
    return None


def _meta_id(cls: Any) -> str:
    meta = cls.META_SCHEMA
    return str(meta.get("$id", meta.get("id", ""))).rstrip("#")


_DRAFTS: dict[str, Any] = {
    _meta_id(cls): cls
    for cls in (
        jsonschema.Draft4Validator,
        jsonschema.Draft6Validator,
        jsonschema.Draft7Validator,
        jsonschema.Draft201909Validator,
        jsonschema.Draft202012Validator,
    )
}
