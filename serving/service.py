"""The scoring API: one `@bentoml.service` answering /decide, /score, /explain and /metadata.

At start-up the service loads the `nbo` pyfunc from MLflow (NBO_MODEL_URI, default
models:/nbo@champion), opens the latest feature snapshot and the decision log; if any of them
is missing or broken the worker fails with a message saying which and how to fix it (`nbo
serve` checks the same before starting the server, so start-up stops instead of retrying).
A request looks its customers up in the snapshot, applies their fresh context, asks the model,
appends every decision to the log (durably, before answering) and answers. Unknown customers
are per-item errors. /healthz, /livez and /readyz are BentoML's own probes (/readyz asks
`__is_ready__`).

The model is used through the interface of `training/nbo_model.py` (read via
`unwrap_python_model()`): `predict(context, frame, params)` returns the decisions table of
`models.policy.DECISION_COLUMNS`; `score(frame)` the churn risk and per-offer uplift columns;
`explain(frame, top_k=..., offer_ids=...)` SHAP contributions. See `LoadedModel`.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import logging
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import InvalidArgument, UnprocessableEntity
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from models.contributions import churn_contributions, uplift_contributions
from models.frame_blocks import column_lists
from models.policy_config import NO_MESSAGE
from models.reasons import Contributions
from serving import bentoml_fixes
from serving.config import HEALTH_PATHS, ServingSettings
from serving.decision_log import DecisionLog
from serving.model_holder import SMOKE_ROWS, ModelHolder, settle_heap
from serving.openapi_doc import OPERATIONS, openapi_document
from serving.schemas import (
    Contribution,
    CustomerContext,
    CustomerExplanation,
    CustomerRequest,
    CustomerScore,
    DecideRequest,
    DecideResponse,
    Decision,
    ExplainRequest,
    ExplainResponse,
    ItemError,
    Metadata,
    ModelInfo,
    ReloadResponse,
    ReloadStatus,
    ScoreRequest,
    ScoreResponse,
)
from serving.snapshot_store import SnapshotStore, open_snapshot_store
from serving.take_turns import TakeTurns

logger = logging.getLogger(__name__)
bentoml_fixes.apply()  # request timers released when the request ends (see serving/bentoml_fixes.py)

__all__ = ["AuthAndLimitMiddleware", "LoadedModel", "NboService", "build_frame", "load_model"]

UPLIFT_PREFIX = "uplift_convert__"
_KEY_MAX_LENGTH = 200


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


class LoadedModel:
    """The `nbo` pyfunc's python model (`training/nbo_model.py`'s `NboModel`) and its versions.

    Two shallow copies share the fitted models: one writes SHAP drivers into decisions, one
    does not (the copy's `explain` mode is fixed, so concurrent requests never race on it).
    """

    def __init__(self, uri: str, python_model: Any, versions: dict[str, str]) -> None:
        self.uri = uri
        self.python_model = python_model
        self.versions = versions
        catalog = getattr(python_model, "catalog", None)
        self.catalog_version = str(catalog.version) if catalog is not None else None
        self.offer_ids = [str(offer) for offer in catalog.offer_ids] if catalog is not None else []
        if hasattr(python_model, "threads"):  # large batches use every core (small inputs stay on one thread)
            python_model.threads = os.cpu_count() or 1
        self._plain = copy.copy(python_model)
        self._explaining = copy.copy(python_model)
        if hasattr(python_model, "explain"):
            self._plain.explain = "none"
            self._explaining.explain = "all"

    def decide(self, frame: pd.DataFrame, now: datetime, explain: bool) -> pd.DataFrame:
        """The decisions table (`models.policy.DECISION_COLUMNS`) at time `now` (naive UTC)."""
        model = self._explaining if explain else self._plain
        return model.predict(None, frame, params={"now": now.isoformat()})

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Decision inputs: `churn_risk` and `uplift_convert__<offer>` (and the other model columns)."""
        scored, _ = self._plain.decision_inputs(frame)
        return scored

    def explain(
        self, frame: pd.DataFrame, top_k: int, offer_ids: Sequence[str | None]
    ) -> list[dict[str, Any]]:
        """Per row: churn risk and the top-k (feature, value, SHAP) of churn and of the offer's uplift."""
        model = self.python_model
        results: list[dict[str, Any]] = [{"churn_risk": None, "churn": [], "uplift": []} for _ in range(len(frame))]
        churn_model = getattr(model, "churn_model", None)
        if churn_model is not None:
            features = frame[[str(name) for name in churn_model.feature_names_in_]]
            risk = churn_model.predict_proba(features)[:, 1]
            contributions = churn_contributions(churn_model, features)
            for row, top in enumerate(_top(contributions, frame, top_k)):
                results[row].update(churn_risk=float(risk[row]), churn=top)
        uplift = getattr(model, "uplift_models", None)
        learner = None if uplift is None else uplift.learners.get("convert")
        if learner is None:
            return results
        offers = np.array([offer or "" for offer in offer_ids], dtype=object)
        for arm in uplift.arms:
            rows = np.flatnonzero(offers == arm)
            if len(rows) == 0:
                continue
            part = frame.iloc[rows]
            contributions = uplift_contributions(learner, part[list(uplift.feature_columns)], arm)
            if contributions is None:
                continue
            for row, top in zip(rows, _top(contributions, part, top_k), strict=True):
                results[row]["uplift"] = top
        return results


@dataclasses.dataclass(eq=False)
class _Pending:
    """One caller's rows waiting for a model call, and then its answer."""

    frame: pd.DataFrame
    explain: bool
    model: LoadedModel
    done: bool = False
    table: pd.DataFrame | None = None
    error: BaseException | None = None


class DecisionBatcher:
    """Coalesces concurrent /decide calls into one model call (vectorised: 30 rows cost about 1).

    Callers take turns leading (`TakeTurns`): one that finds no model call running decides, on
    its own thread, its rows together with every other pending caller's (up to `max_rows`), and
    hands each its rows back; callers arriving meanwhile wait, and one of them leads next. Under
    no load a request is decided alone on its own thread, with no hand-over to another thread.
    Each request names the model it decides with (during a hot reload old and new models may
    both be pending), and rows are only batched with rows of the same model and explain flag.
    """

    def __init__(self, max_rows: int = 2_000) -> None:
        self.max_rows = max_rows
        self._turns: TakeTurns[_Pending] = TakeTurns(self._decide, self._take)

    def submit(self, frame: pd.DataFrame, explain: bool, model: LoadedModel) -> pd.DataFrame:
        """The decisions table for `frame` by `model`, decided now (naive UTC)."""
        if len(frame) >= self.max_rows:
            return model.decide(frame, datetime.now(UTC).replace(tzinfo=None), explain)
        request = _Pending(frame, explain, model)
        self._turns.submit(request)
        if request.error is not None:
            raise request.error
        return request.table

    def _take(self, pending: list[_Pending]) -> int:
        """How many of the oldest pending requests to decide together: up to `max_rows` rows (at least one)."""
        count, rows = 0, 0
        for item in pending:
            if count and rows + len(item.frame) > self.max_rows:
                break
            count, rows = count + 1, rows + len(item.frame)
        return count

    def _decide(self, taken: list[_Pending]) -> None:
        """One model call per (model, explain) group; every request ends done, with its rows or the error."""
        now = datetime.now(UTC).replace(tzinfo=None)
        try:
            for model, explain in dict.fromkeys((item.model, item.explain) for item in taken):
                group = [item for item in taken if item.model is model and item.explain is explain]
                try:
                    frames = [item.frame for item in group]
                    combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
                    table = model.decide(combined, now, explain)
                except Exception as error:  # each caller gets the error its request caused
                    for item in group:
                        item.error = error
                    continue
                if len(group) == 1:
                    group[0].table = table
                    continue
                start = 0
                for item in group:
                    item.table = table.iloc[start : start + len(item.frame)].reset_index(drop=True)
                    start += len(item.frame)
        finally:
            for item in taken:
                if item.table is None and item.error is None:  # interrupted: no caller may wait forever
                    item.error = RuntimeError("the decision batch was interrupted; retry the request")
                item.done = True


def _top(contributions: Contributions, frame: pd.DataFrame, top_k: int) -> list[list[tuple[str, Any, float]]]:
    """Per row, the top-k (feature, the row's value, contribution) by |contribution|."""
    values, names = contributions.values, contributions.feature_names
    order = np.argsort(-np.abs(np.nan_to_num(values)), axis=1, kind="stable")[:, :top_k]
    result = []
    for row in range(len(values)):
        result.append(
            [
                (names[k], frame[names[k]].iloc[row] if names[k] in frame.columns else None, float(values[row, k]))
                for k in order[row]
            ]
        )
    return result


def _registry_versions(uri: str, run_id: str | None) -> dict[str, str]:
    versions = {"run_id": run_id} if run_id else {}
    if not uri.startswith("models:/"):
        return versions
    from mlflow import MlflowClient

    name, _, rest = uri.removeprefix("models:/").partition("@")
    try:
        if rest:
            versions["nbo"] = str(MlflowClient().get_model_version_by_alias(name, rest).version)
        elif "/" in name:
            versions["nbo"] = name.split("/", 1)[1]
    except Exception as error:  # the registry answered the load; a failed look-up is not fatal
        logger.warning("could not resolve the registry version of %s: %s", uri, error)
    return versions


def load_model(uri: str) -> LoadedModel:
    """Load the deployable pyfunc; a missing or broken model raises RuntimeError saying how to fix it."""
    import mlflow.pyfunc

    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
        python_model = pyfunc.unwrap_python_model()
    except Exception as error:
        raise RuntimeError(
            f"cannot load the nbo model from {uri!r} ({type(error).__name__}: {error}). Train and register it "
            "(`nbo train ...` registers `nbo` with alias `champion`), check MLFLOW_TRACKING_URI, or set "
            "NBO_MODEL_URI to a model that exists"
        ) from error
    missing = [name for name in ("predict", "decision_inputs") if not callable(getattr(python_model, name, None))]
    if missing:
        raise RuntimeError(f"the model at {uri!r} is not a deployable nbo model: it lacks {missing}")
    versions = _registry_versions(uri, getattr(pyfunc.metadata, "run_id", None))
    metadata = getattr(python_model, "metadata", None) or {}
    versions.update({str(k): str(v) for k, v in metadata.items() if str(k).endswith(("version", "run_id"))})
    return LoadedModel(uri, python_model, versions)


# ----------------------------------------------------------------------------------------------
# Requests -> model input
# ----------------------------------------------------------------------------------------------

_BOOL_CONTEXT = ("email_consent", "sms_consent", "push_consent")
_TIME_CONTEXT = ("last_purchase_at", "last_message_at")


def _utc_naive(value: datetime) -> np.datetime64:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "us")


def _apply_context(frame: pd.DataFrame, contexts: Sequence[CustomerContext | None]) -> pd.DataFrame:
    """Override snapshot columns with each customer's fresh context (rows aligned with contexts)."""
    given = [(row, context) for row, context in enumerate(contexts) if context is not None]
    if not given:
        return frame
    fields = {name for _, context in given for name in context.model_fields_set if getattr(context, name) is not None}
    for name in sorted(fields):
        rows = [row for row, context in given if getattr(context, name) is not None]
        values = [getattr(contexts[row], name) for row in rows]
        if name in _BOOL_CONTEXT:
            current = frame[name].to_numpy(dtype=object, na_value=None) if name in frame else np.full(len(frame), None)
            current = current.copy()
            current[rows] = values
            has_missing = any(value is None for value in current)
            frame[name] = pd.array(current, dtype="boolean") if has_missing else current.astype(bool)
        elif name in _TIME_CONTEXT:
            current = (
                frame[name].to_numpy(dtype="datetime64[us]")
                if name in frame
                else np.full(len(frame), np.datetime64("NaT", "us"))
            ).copy()
            current[rows] = [_utc_naive(value) for value in values]
            frame[name] = current
        else:
            current = np.full(len(frame), np.nan)
            if name in frame:
                current = frame[name].to_numpy(dtype=float, na_value=np.nan).copy()
            current[rows] = values
            frame[name] = current
    return frame


def build_frame(
    store: SnapshotStore, customers: Sequence[CustomerRequest]
) -> tuple[pd.DataFrame, list[int], list[ItemError]]:
    """Model input in request order for the known customers, their request positions, and errors."""
    ids = [customer.customer_id for customer in customers]
    found = store.lookup(ids)
    found_ids = [str(value) for value in column_lists(found, ("customer_id",))["customer_id"]]  # no Series
    if len(found) == len(ids) and found_ids == ids:
        # The usual request: every customer known, each once, and the store kept the request order.
        return _apply_context(found, [customer.context for customer in customers]), list(range(len(ids))), []
    position = pd.Index(found_ids) if len(found) else pd.Index([], dtype=str)
    where = position.get_indexer(ids)
    known = [index for index, row in enumerate(where) if row >= 0]
    errors = [
        ItemError(
            index=index,
            customer_id=ids[index],
            code="unknown_customer",
            message=f"customer {ids[index]!r} is not in the feature snapshot (as of {store.as_of}); "
            "check the id or wait for the next snapshot",
        )
        for index, row in enumerate(where)
        if row < 0
    ]
    frame = found.take(where[known]).reset_index(drop=True) if known else found.iloc[:0]
    frame = _apply_context(frame, [customers[index].context for index in known])
    return frame, known, errors


def _codes(text: Any, separator: str) -> list[str]:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    return [part for part in str(text).split(separator) if part]


def _number(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)


#: The decisions-table columns a record reads, in the order `_records` unpacks them.
_RECORD_COLUMNS = (
    "send_at", "customer_id", "offer_id", "channel", "send_at_local", "churn_risk", "uplift_convert", "expected_value",
    "expected_incremental_revenue", "expected_cost", "lifecycle_stage", "holdout", "explored", "propensity",
    "reason_codes", "churn_drivers", "uplift_drivers",
)  # fmt: skip


def _records(table: pd.DataFrame, positions: list[int], decided_at: datetime, versions: str) -> list[dict[str, Any]]:
    """Decision records (response fields + `model_version`) from the model's decisions table."""
    # Read from the blocks as Python values (a Series per column cost most of this function); send_at
    # (naive UTC) comes as datetimes, or Timestamps at a unit other than microseconds: same isoformat.
    columns = column_lists(table, _RECORD_COLUMNS)
    columns["send_at"] = [None if stamp is None else stamp.isoformat() + "+00:00" for stamp in columns["send_at"]]
    stamp = decided_at.isoformat()
    rows = zip(positions, *(columns[name] for name in _RECORD_COLUMNS), strict=True)
    return [
        {
            "decision_id": uuid.uuid4().hex,
            "index": index,
            "customer_id": str(customer),
            "decided_at": stamp,
            "offer_id": str(offer),
            "send_message": str(offer) != NO_MESSAGE,
            "channel": channel,
            "send_at": send,
            "send_at_local": local,
            "churn_risk": _number(risk),
            "expected_uplift": float(uplift),
            "expected_value": float(value),
            "expected_incremental_revenue": float(revenue),
            "expected_cost": float(cost),
            "lifecycle_stage": stage,
            "holdout": bool(holdout),
            "explored": bool(explored),
            "propensity": float(propensity),
            "reason_codes": _codes(reasons, ";"),
            "churn_drivers": _codes(churn_drivers, "; "),
            "uplift_drivers": _codes(uplift_drivers, "; "),
            "model_version": versions,
        }
        for (index, send, customer, offer, channel, local, risk, uplift, value, revenue, cost, stage, holdout,
             explored, propensity, reasons, churn_drivers, uplift_drivers) in rows
    ]  # fmt: skip


def _decision(record: dict[str, Any]) -> Decision:
    return Decision(**{name: record[name] for name in Decision.model_fields})


def _idempotency_key(header: str | None, field: str | None) -> str | None:
    key = header if header is not None else field
    if key is None:
        return None
    if not 1 <= len(key) <= _KEY_MAX_LENGTH or not all(33 <= ord(char) <= 126 for char in key):
        raise InvalidArgument(
            f"Idempotency-Key must be 1 to {_KEY_MAX_LENGTH} visible ASCII characters without spaces, "
            f"got {len(key)} characters"
        )
    return key


def _feature_value(value: Any) -> float | str | bool | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.number):
        return float(value)
    return str(value)


# ----------------------------------------------------------------------------------------------
# Auth and body size (ASGI middleware, before BentoML parses anything)
# ----------------------------------------------------------------------------------------------


class AuthAndLimitMiddleware:
    """401 without `Authorization: Bearer <NBO_API_KEY>` (health probes exempt); 413 above the body limit."""

    def __init__(self, app: Any, settings: ServingSettings | None = None) -> None:
        self.app = app
        self.settings = settings or ServingSettings.from_env()
        self._expected = f"Bearer {self.settings.api_key}".encode() if self.settings.api_key else None
        self._document: tuple[tuple[str, ...], dict[str, Any]] | None = None

    def _openapi_document(self) -> dict[str, Any]:
        """BentoML's document corrected from the pydantic models (`serving.openapi_doc`); rebuilt for new offers."""
        try:
            offers = tuple(bentoml.get_current_service().model.offer_ids)
        except Exception:  # not started yet: the document just lists no offers
            offers = ()
        if self._document is None or self._document[0] != offers:
            self._document = (offers, openapi_document(NboService.openapi_spec.asdict(), offers))
        return self._document[1]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self._expected is not None and scope.get("path") not in HEALTH_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await _reply(send, 401, "missing or wrong API key: send the header `Authorization: Bearer <key>`",
                             [(b"www-authenticate", b"Bearer")])  # fmt: skip
                return
        if scope.get("path") == "/docs.json" and scope.get("method") == "GET":
            await _reply_json(send, 200, self._openapi_document())
            return
        limit = self.settings.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _reply(send, 413, f"request body of {int(length)} bytes is over the limit of {limit} bytes")
            return
        content_type = headers.get(b"content-type")
        if scope.get("path") in OPERATIONS and content_type is not None and not _is_json(content_type):
            given = content_type[:100].decode("latin-1")
            await _reply(send, 415, f"send the body as JSON with `Content-Type: application/json`, not {given!r}")
            return
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    await _reply(send, 413, f"request body is over the limit of {limit} bytes")
                    return
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, _single_error_object(send))
            return
        await self.app(scope, receive, send)


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def _single_error_object(send: Any) -> Any:
    """`send` that turns BentoML's 4xx body `[{"error": ...}]` (a tuple it serialises) into the documented object.

    BentoML 1.4 answers an `InvalidArgument`/`UnprocessableEntity` raised by an API with a one-item
    JSON list; every other error body, and every 2xx answer, passes through untouched.
    """
    import json

    started: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
            started.update(message)
            return
        if not started or message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        try:
            content = json.loads(body)
        except ValueError:
            content = None
        if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict):
            body = json.dumps(content[0]).encode()
        headers = [(name, value) for name, value in started["headers"] if name.lower() != b"content-length"]
        await send({**started, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped


async def _reply(send: Any, status: int, message: str, extra_headers: list | None = None) -> None:
    await _reply_json(send, status, {"error": message}, extra_headers)


async def _reply_json(send: Any, status: int, content: Any, extra_headers: list | None = None) -> None:
    import json

    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------------------------
# The service
# ----------------------------------------------------------------------------------------------

metadata_app = FastAPI(title="nbo metadata", openapi_url=None, docs_url=None, redoc_url=None)


@bentoml.service(name="nbo", threads=32, traffic={"timeout": 120})
@bentoml.asgi_app(metadata_app, path="/")
class NboService:
    """Next-best-offer decisions, scores and explanations for marketing systems."""

    def __init__(self) -> None:
        self.settings = ServingSettings.from_env()
        self.holder = ModelHolder(self.settings.model_uri, load_model(self.settings.model_uri), load_model)
        try:
            self.snapshot = open_snapshot_store(self.settings.snapshot, self.settings.snapshot_memory_rows)
        except (OSError, ValueError) as error:
            raise RuntimeError(f"cannot open the feature snapshot {self.settings.snapshot!r}: {error}") from error
        self.log = DecisionLog(self.settings.decision_log)
        self.batcher = DecisionBatcher()
        # Rows to smoke-test a reloaded model with before any request has been answered.
        self.holder.remember(self.snapshot.sample(SMOKE_ROWS))
        self.holder.start_polling(self.settings.reload_seconds)
        settle_heap()
        logger.info(
            "nbo service ready: model %s %s, snapshot %s as of %s, decision log %s",
            self.settings.model_uri, self.model.versions, self.settings.snapshot, self.snapshot.as_of,
            self.settings.decision_log,
        )  # fmt: skip

    def __is_ready__(self) -> bool:
        try:
            return self.snapshot.as_of is not None or self.snapshot.customer_count is not None
        except Exception:  # a probe must answer, not raise
            return False

    @property
    def model(self) -> LoadedModel:
        """The serving model now; a request reads it once and uses that object throughout."""
        return self.holder.current

    def _info(self, model: LoadedModel | None = None) -> ModelInfo:
        model = self.model if model is None else model
        as_of = self.snapshot.as_of
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.tz_localize("UTC")
        return ModelInfo(
            model_uri=model.uri,
            model_versions=model.versions,
            catalog_version=model.catalog_version,
            snapshot_as_of=None if as_of is None else as_of.to_pydatetime(),
        )

    @bentoml.api(route="/decide", input_spec=DecideRequest)
    def decide(self, ctx: bentoml.Context, **request: Any) -> DecideResponse:
        """Decide for 1 to 10,000 customers: offer or no message, channel, send time, and why."""
        customers: list[CustomerRequest] = request["customers"]
        key = _idempotency_key(ctx.request.headers.get("idempotency-key"), request.get("idempotency_key"))
        if key is not None:
            stored = self.log.find(key)
            if stored is not None:
                return self._replay(key, stored, customers)
        model = self.model
        frame, positions, errors = build_frame(self.snapshot, customers)
        decided_at = datetime.now(UTC)
        records: list[dict[str, Any]] = []
        if positions:
            table = self.batcher.submit(frame, bool(request.get("explain")), model)
            self.holder.remember(frame)
            version = ",".join(f"{name}={value}" for name, value in sorted(model.versions.items()))
            records = self.log.append(_records(table, positions, decided_at, version), idempotency_key=key)
        replayed = bool(records) and records[0]["decided_at"] != decided_at.isoformat()
        return DecideResponse(
            idempotency_key=key,
            replayed=replayed,
            decisions=[_decision(record) for record in records],
            errors=errors,
            model=self._info(model),
        )

    def _replay(self, key: str, stored: list[dict[str, Any]], customers: list[CustomerRequest]) -> DecideResponse:
        by_index = {int(record["index"]): record for record in stored}
        mismatched = [
            index for index, record in by_index.items()
            if index >= len(customers) or customers[index].customer_id != record["customer_id"]
        ]  # fmt: skip
        if mismatched:
            raise UnprocessableEntity(
                f"Idempotency-Key {key!r} was already used for a different request (customers differ at "
                f"positions {mismatched[:5]}); use a new key for a new request"
            )
        errors = [
            ItemError(index=index, customer_id=customer.customer_id, code="unknown_customer",
                      message=f"customer {customer.customer_id!r} was not in the feature snapshot when this "
                      "request was first answered")
            for index, customer in enumerate(customers) if index not in by_index
        ]  # fmt: skip
        return DecideResponse(
            idempotency_key=key,
            replayed=True,
            decisions=[_decision(by_index[index]) for index in sorted(by_index)],
            errors=errors,
            model=self._info(),
        )

    @bentoml.api(route="/score", input_spec=ScoreRequest)
    def score(self, **request: Any) -> ScoreResponse:
        """Churn risk and per-offer uplift of 1 to 10,000 customers, without the policy (nothing logged)."""
        model = self.model
        frame, positions, errors = build_frame(self.snapshot, request["customers"])
        scores: list[CustomerScore] = []
        if positions:
            table = model.score(frame)
            self.holder.remember(frame)
            uplift_columns = [name for name in table.columns if name.startswith(UPLIFT_PREFIX)]
            churn = table["churn_risk"].to_numpy(dtype=float, na_value=np.nan)
            uplift = table[uplift_columns].to_numpy(dtype=float, na_value=np.nan)
            offers = [name.removeprefix(UPLIFT_PREFIX) for name in uplift_columns]
            ids = frame["customer_id"].astype(str).tolist()
            for row, index in enumerate(positions):
                scores.append(
                    CustomerScore(
                        index=index,
                        customer_id=ids[row],
                        churn_risk=_number(churn[row]),
                        uplift={offer: _number(uplift[row, k]) for k, offer in enumerate(offers)},
                    )
                )
        return ScoreResponse(scores=scores, errors=errors, model=self._info(model))

    @bentoml.api(route="/explain", input_spec=ExplainRequest)
    def explain(self, **request: Any) -> ExplainResponse:
        """Top-k SHAP contributions, with feature values, for churn risk and the chosen offer's uplift."""
        model = self.model
        offer_id = request.get("offer_id")
        if offer_id is not None and model.offer_ids and offer_id not in model.offer_ids:
            raise InvalidArgument(f"offer_id {offer_id!r} is not in the catalog; known offers: {model.offer_ids}")
        frame, positions, errors = build_frame(self.snapshot, request["customers"])
        explanations: list[CustomerExplanation] = []
        if positions:
            if offer_id is None:
                chosen = model.decide(frame, datetime.now(UTC).replace(tzinfo=None), False)["offer_id"]
                offers = [None if offer == NO_MESSAGE else str(offer) for offer in chosen]
            else:
                offers = [offer_id] * len(frame)
            results = model.explain(frame, request["top_k"], offers)
            for row, index in enumerate(positions):
                result = results[row]
                explanations.append(
                    CustomerExplanation(
                        index=index,
                        customer_id=str(frame["customer_id"].iloc[row]),
                        churn_risk=_number(result.get("churn_risk")),
                        churn=[Contribution(feature=feature, value=_feature_value(value), contribution=float(shap))
                               for feature, value, shap in result["churn"]],
                        offer_id=offers[row],
                        uplift=[Contribution(feature=feature, value=_feature_value(value), contribution=float(shap))
                                for feature, value, shap in result["uplift"]],
                    )
                )
        return ExplainResponse(explanations=explanations, errors=errors, model=self._info(model))

    @metadata_app.get("/metadata", response_model=Metadata)
    def metadata(self) -> Metadata:
        """Model versions, snapshot as-of time, catalog version and the latest reload attempt."""
        model = self.model
        status = self.holder.last_status
        return Metadata(
            **self._info(model).model_dump(),
            offers=model.offer_ids,
            snapshot_customers=self.snapshot.customer_count,
            last_reload=None if status is None else ReloadStatus(**dataclasses.asdict(status)),
        )

    @metadata_app.post("/reload", response_model=ReloadResponse)
    def reload(self) -> JSONResponse:
        """Load the registry alias's current version; swap it in only if it loads and answers a smoke prediction."""
        status = self.holder.reload()
        answer = ReloadResponse(**dataclasses.asdict(status), model=self._info())
        return JSONResponse(answer.model_dump(mode="json"), status_code=409 if status.outcome == "failed" else 200)


NboService.add_asgi_middleware(AuthAndLimitMiddleware)
