"""The OpenAPI document, true to what the API answers: every error is RFC 9457
problem+json, so every operation documents its error statuses with that media type and the
Problem schema (FastAPI alone would document a 422 shape the API never sends)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_JSON

# What any operation may answer besides its success: bad input (422), no or a dead token
# (401), a role or object it may not touch (403/404), a state that forbids it (409), a body
# over the cap (413), a limit (429), PostgreSQL or Temporal unreachable, the PDF renderers busy (503).
ERROR_STATUSES = {
    "400": "Bad request",
    "401": "Not authenticated: no token, or one that expired or was revoked",
    "403": "Forbidden for this role",
    "404": "Not found, or not yours",
    "409": "Conflict with the current state (not enough money, a loan not open, a key in flight, ...)",
    "413": "Request body too large (MAX_REQUEST_BODY_BYTES; MAX_CODEC_BODY_BYTES on /codec/)",
    "422": "Invalid request: each wrong field is named",
    "429": "Too many requests: wait Retry-After seconds",
    "503": "A dependency (PostgreSQL, Temporal, the PDF renderers) is unavailable: send again after Retry-After",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; some problems add fields (errors, left, retry_after_seconds, ...).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": ["string", "null"]},
                    "location": {"type": ["string", "null"]},
                    "message": {"type": ["string", "null"]},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
    "additionalProperties": True,
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in spec.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in ERROR_STATUSES.items():
                    existing = responses.get(status, {})
                    if "content" in existing and PROBLEM_JSON not in existing["content"] and status != "422":
                        continue  # the route documents an answer of its own (the health report)
                    responses[status] = {"description": existing.get("description", description), "content": problem}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
