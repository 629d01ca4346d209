"""The OpenAPI document the service serves at /docs.json, corrected from BentoML's.

BentoML (1.4) writes an OpenAPI 3.0.2 document whose bodies are a lossy copy of the pydantic
models: top-level optional fields lose their `null`, nested ones keep JSON Schema 2020-12's
`{"type": "null"}` (not valid 3.0), the 400 body's `detail` is declared a string although it is a
list of validation errors, and the 401/413/422 answers and the bearer key are missing. This
module rebuilds the API operations' bodies from the pydantic models themselves (the source of
truth), declares OpenAPI 3.1 (whose schemas are JSON Schema 2020-12, as pydantic writes them)
and documents every status the service answers with, so clients and the fuzz test can rely on it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.config import HEALTH_PATHS
from serving.schemas import (
    DecideRequest,
    DecideResponse,
    ErrorResponse,
    ExplainRequest,
    ExplainResponse,
    Metadata,
    ReloadResponse,
    ScoreRequest,
    ScoreResponse,
)

__all__ = ["OPERATIONS", "openapi_document"]

_REF = "#/components/schemas/{model}"
_JSON = "application/json"
#: Request and response model of each POST operation BentoML declares from `input_spec`.
OPERATIONS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "/decide": (DecideRequest, DecideResponse),
    "/score": (ScoreRequest, ScoreResponse),
    "/explain": (ExplainRequest, ExplainResponse),
}
_ERRORS = {
    400: "Malformed request: `detail` lists each problem with its field (`loc`); `error` says what is wrong.",
    401: "Missing or wrong API key: send `Authorization: Bearer <key>`.",
    413: "Request body over the limit (NBO_MAX_BODY_BYTES).",
    415: "The body is not `application/json`.",
    422: "The Idempotency-Key was already used for a request with different customers.",
    500: "Unexpected server error (a bug: the server log has the details).",
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _ERRORS[status],
        "content": {_JSON: {"schema": {"$ref": _REF.format(model="ErrorResponse")}}},
    }


def _body(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": _REF.format(model=model.__name__)}}}}


def _components() -> dict[str, Any]:
    """Every body model as a named 2020-12 schema under components/schemas (pydantic's own output)."""
    models: list[tuple[type[BaseModel], str]] = [
        (ErrorResponse, "serialization"),
        (Metadata, "serialization"),
        (ReloadResponse, "serialization"),
    ]
    for request, response in OPERATIONS.values():
        models += [(request, "validation"), (response, "serialization")]
    _, schema = models_json_schema(models, ref_template=_REF)
    return schema["$defs"]


def openapi_document(bentoml_document: dict[str, Any], offer_ids: Sequence[str] = ()) -> dict[str, Any]:
    """`bentoml_document` (BentoML's /docs.json) with this API's bodies, statuses and auth declared correctly.

    `offer_ids` (the serving model's catalog) become the allowed values of /explain's `offer_id`.
    """
    document = copy.deepcopy(bentoml_document)
    document["openapi"] = "3.1.0"
    components = document.setdefault("components", {})
    components["schemas"] = _components()
    if offer_ids:
        offer = components["schemas"]["ExplainRequest"]["properties"]["offer_id"]
        for choice in offer.get("anyOf", []):
            if choice.get("type") == "string":
                choice["enum"] = list(offer_ids)
    components["securitySchemes"] = {
        "apiKey": {"type": "http", "scheme": "bearer", "description": "The NBO_API_KEY the service was started with."}
    }
    document["security"] = [{"apiKey": []}]
    paths = document.setdefault("paths", {})
    for path, (request, response) in OPERATIONS.items():
        operation = paths[path]["post"]
        operation["requestBody"] = {"required": True, **_body(request, request.__doc__ or "")}
        statuses = [400, 401, 413, 415, 422, 500] if path == "/decide" else [400, 401, 413, 415, 500]
        operation["responses"] = {"200": _body(response, "The answer."), **{str(s): _error(s) for s in statuses}}
        if path == "/decide":
            operation["parameters"] = [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Retrying with the same key returns the first answer; wins over the body field.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[\x21-\x7e]+$"},
                }
            ]
    paths["/metadata"] = {
        "get": {
            **paths.get("/metadata", {}).get("get", {}),
            "responses": {"200": _body(Metadata, "Model versions, snapshot and catalog."), "401": _error(401)},
        }
    }
    paths["/reload"] = {
        "post": {
            "summary": "Reload the champion",
            "description": "Load the registry alias's current version and swap it in after a smoke prediction; "
            "a failed load keeps the serving model and says why.",
            "operationId": "nbo__reload",
            "responses": {
                "200": _body(ReloadResponse, "Reloaded, or already serving the alias's version."),
                "401": _error(401),
                "409": _body(
                    ReloadResponse,
                    "The new version could not be loaded or failed its smoke prediction; the old model keeps serving.",
                ),
            },
        }
    }
    for path, item in paths.items():
        for operation in item.values():
            if path in HEALTH_PATHS:
                operation["security"] = []
            elif "401" not in operation.get("responses", {}):
                operation.setdefault("responses", {})["401"] = _error(401)
    return document
