"""Request and response bodies of the scoring API; their descriptions become the OpenAPI document.

Requests forbid unknown fields (so a typo or a personal field such as an e-mail address is a
400 naming it), take booleans and integers strictly (`"yes"` or `false` for a count is a 400, not
a guess) and hide input values in validation errors, so nothing a client sends ends up
in the server's logs. Responses are strict too: the fuzz test validates every answer with them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from serving.config import MAX_CUSTOMERS_PER_EXPLAIN, MAX_CUSTOMERS_PER_REQUEST

_REQUEST = ConfigDict(extra="forbid", hide_input_in_errors=True)
_RESPONSE = ConfigDict(extra="forbid", protected_namespaces=())
_CUSTOMER_ID = Field(
    min_length=1,
    max_length=128,
    pattern=r"^[^\x00-\x1f\x7f]+$",
    description="The customer's id, as in the contract's `customer_id` (a string).",
    examples=["13085"],
)
_KEY_PATTERN = r"^[\x21-\x7e]+$"
_EARLIEST_YEAR, _LATEST_YEAR = 1900, 2199
_TIME_PATTERN = r"^(19\d\d|2[01]\d\d)-\d\d-\d\d[Tt ]\d\d:\d\d"


def _time_text(value: object) -> object:
    """Times come as ISO 8601 text (pydantic would also take 0 or "0" as 1970-01-01, hiding a client bug)."""
    if not isinstance(value, str) or re.match(_TIME_PATTERN, value) is None:
        raise ValueError(
            f"must be an ISO 8601 date and time such as 2025-06-01T09:59:00Z in the years {_EARLIEST_YEAR} to "
            f"{_LATEST_YEAR}"
        )
    return value


def _json_integer(value: object) -> object:
    """JSON integers (1 and 1.0 alike); pydantic would also turn "1" or false into a number."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number without a fractional part, not a string or boolean")
    return value


def json_integer(minimum: int, maximum: int) -> Any:
    """An integer in [minimum, maximum] as JSON Schema means it: 3 or 3.0, never "3" or true.

    The bounds sit inside the validator's type so pydantic writes them as minimum/maximum.
    """
    return Annotated[Annotated[int, Field(ge=minimum, le=maximum)], BeforeValidator(_json_integer)]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value


#: A time of a customer event as ISO 8601 text, years 1900-2199 (naive means UTC). Year 1 or 9999
#: with an offset overflowed the conversion to UTC (a 500); its JSON schema states the form.
EventTime = Annotated[
    datetime,
    BeforeValidator(_time_text),
    AfterValidator(_utc),
    Field(json_schema_extra={"pattern": _TIME_PATTERN}),
]


class CustomerContext(BaseModel):
    """What happened since the snapshot was taken; each given field overrides the snapshot."""

    model_config = _REQUEST

    email_consent: bool | None = Field(
        default=None, strict=True, description="E-mail consent as of now (e.g. just withdrawn).", examples=[False]
    )
    sms_consent: bool | None = Field(default=None, strict=True, description="SMS consent as of now.", examples=[True])
    push_consent: bool | None = Field(default=None, strict=True, description="Push consent as of now.", examples=[True])
    last_purchase_at: EventTime | None = Field(
        default=None,
        description="Time of a purchase after the snapshot (UTC unless an offset is given); "
        "blocks discounts a just-bought customer does not need.",
        examples=["2025-06-01T09:59:00Z"],
    )
    last_message_at: EventTime | None = Field(
        default=None,
        description="Time the customer was last sent a message on any channel (UTC unless an "
        "offset is given); the next send keeps the minimum gap after it.",
        examples=["2025-05-31T18:00:00Z"],
    )
    messages_sent_7d: json_integer(0, 1000) | None = Field(
        default=None,
        description="Messages sent in the last 7 days up to now.",
        examples=[1],
    )


class CustomerRequest(BaseModel):
    """One customer to decide for, with optional fresh context."""

    model_config = _REQUEST

    customer_id: str = _CUSTOMER_ID
    context: CustomerContext | None = Field(
        default=None, description="Fresh facts that override the stored snapshot for this customer."
    )


class DecideRequest(BaseModel):
    """Customers to decide for: which offer on which channel when, or no message."""

    model_config = _REQUEST

    customers: list[CustomerRequest] = Field(
        min_length=1,
        max_length=MAX_CUSTOMERS_PER_REQUEST,
        description=f"1 to {MAX_CUSTOMERS_PER_REQUEST:,} customers; answers keep this order.",
        examples=[[{"customer_id": "13085", "context": {"email_consent": False}}]],
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=_KEY_PATTERN,
        description="Retrying with the same key returns the first answer (same decision ids). "
        "The `Idempotency-Key` header, when sent, wins over this field.",
        examples=["crm-batch-2025-06-01-0001"],
    )
    explain: bool = Field(
        default=False,
        strict=True,
        description="Also name the top SHAP drivers of churn risk and of the chosen offer's uplift.",
        examples=[False],
    )


class Decision(BaseModel):
    """The decision for one customer, as written to the decision log."""

    model_config = _RESPONSE

    decision_id: str = Field(description="Unique id of this decision (also in the log).", examples=["6f1c0e0e5b7d4f7c"])
    index: int = Field(description="Position of the customer in the request.", examples=[0])
    customer_id: str = Field(description="The customer's id.", examples=["13085"])
    decided_at: datetime = Field(description="When the decision was made (UTC).")
    offer_id: str = Field(description="The chosen offer, or `no_message`.", examples=["discount_10"])
    send_message: bool = Field(description="False when the decision is to send nothing.", examples=[True])
    channel: str | None = Field(description="email, sms or push; null with no message.", examples=["email"])
    send_at: datetime | None = Field(description="When to send (UTC); null with no message.")
    send_at_local: str | None = Field(description="The send time in the customer's time zone.")
    churn_risk: float | None = Field(description="P(churn) over the model's horizon.", examples=[0.42])
    expected_uplift: float = Field(
        description="Increase in P(convert) the chosen offer causes (0 with no message).", examples=[0.03]
    )
    expected_value: float = Field(
        description="Expected incremental profit of the decision, after costs and harm (0 with no message).",
        examples=[1.8],
    )
    expected_incremental_revenue: float = Field(description="Expected incremental revenue of the decision.")
    expected_cost: float = Field(description="Send cost plus expected discount cost.")
    lifecycle_stage: str | None = Field(description="The customer's lifecycle stage.", examples=["at_risk"])
    holdout: bool = Field(description="In the global holdout group: gets nothing, measures the programme.")
    explored: bool = Field(description="Chosen at random among allowed options (exploration).")
    propensity: float = Field(
        description="Probability with which this decision was made (for unbiased training and evaluation).",
        examples=[0.96],
    )
    reason_codes: list[str] = Field(
        description="Rules that removed options, then how the choice was made.",
        examples=[["no_sms_consent", "best_value"]],
    )
    churn_drivers: list[str] = Field(description="Top SHAP drivers of churn risk in words (when asked to explain).")
    uplift_drivers: list[str] = Field(description="Top SHAP drivers of the chosen offer's uplift in words.")


class ItemError(BaseModel):
    """A customer that could not be answered; the rest of the request still is."""

    model_config = _RESPONSE

    index: int = Field(description="Position of the customer in the request.", examples=[3])
    customer_id: str = Field(description="The customer's id as sent.", examples=["99999"])
    code: str = Field(description="Machine-readable reason, e.g. `unknown_customer`.", examples=["unknown_customer"])
    message: str = Field(description="What is wrong and how to fix it.")


class ModelInfo(BaseModel):
    """Which models and data answered."""

    model_config = _RESPONSE

    model_uri: str = Field(description="MLflow URI the service loaded.", examples=["models:/nbo@champion"])
    model_versions: dict[str, str] = Field(
        description="Version of each model (registry version or run id).", examples=[{"nbo": "3"}]
    )
    catalog_version: str | None = Field(description="Version of the offers catalog.", examples=["2025-06"])
    snapshot_as_of: datetime | None = Field(description="As-of time of the feature snapshot (UTC).")


class DecideResponse(BaseModel):
    """Decisions for the known customers and per-item errors for the others."""

    model_config = _RESPONSE

    idempotency_key: str | None = Field(description="The key the answer is stored under, if any.")
    replayed: bool = Field(description="True when this is the stored answer to an earlier request with the same key.")
    decisions: list[Decision] = Field(description="One decision per known customer, in request order.")
    errors: list[ItemError] = Field(description="One entry per customer that could not be decided.")
    model: ModelInfo = Field(description="Models and data behind the decisions.")


class ScoreRequest(BaseModel):
    """Customers to score (no policy, nothing logged)."""

    model_config = _REQUEST

    customers: list[CustomerRequest] = Field(
        min_length=1,
        max_length=MAX_CUSTOMERS_PER_REQUEST,
        description=f"1 to {MAX_CUSTOMERS_PER_REQUEST:,} customers.",
        examples=[[{"customer_id": "13085"}]],
    )


class CustomerScore(BaseModel):
    """Model scores of one customer."""

    model_config = _RESPONSE

    index: int = Field(description="Position of the customer in the request.")
    customer_id: str = Field(description="The customer's id.")
    churn_risk: float | None = Field(description="P(churn) over the model's horizon.", examples=[0.42])
    uplift: dict[str, float | None] = Field(
        description="Per offer, the increase in P(convert) it causes.", examples=[{"discount_10": 0.031}]
    )


class ScoreResponse(BaseModel):
    """Scores for the known customers and per-item errors for the others."""

    model_config = _RESPONSE

    scores: list[CustomerScore] = Field(description="One entry per known customer, in request order.")
    errors: list[ItemError] = Field(description="One entry per customer that could not be scored.")
    model: ModelInfo = Field(description="Models and data behind the scores.")


class ExplainRequest(BaseModel):
    """Customers whose churn risk and chosen offer's uplift to explain."""

    model_config = _REQUEST

    customers: list[CustomerRequest] = Field(
        min_length=1,
        max_length=MAX_CUSTOMERS_PER_EXPLAIN,
        description=f"1 to {MAX_CUSTOMERS_PER_EXPLAIN} customers.",
        examples=[[{"customer_id": "13085"}]],
    )
    top_k: json_integer(1, 50) = Field(default=5, description="How many contributions to return per model.")
    offer_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Explain this offer's uplift instead of the offer the policy would choose.",
        examples=["discount_10"],
    )


class Contribution(BaseModel):
    """One feature's SHAP contribution and its value for this customer."""

    model_config = _RESPONSE

    feature: str = Field(description="Feature (column) name.", examples=["recency_days"])
    value: float | str | bool | None = Field(description="The customer's value of the feature.", examples=[64.0])
    contribution: float = Field(
        description="SHAP value: push on the score (churn: log-odds; uplift: probability).", examples=[0.41]
    )


class CustomerExplanation(BaseModel):
    """Top-k SHAP contributions for one customer."""

    model_config = _RESPONSE

    index: int = Field(description="Position of the customer in the request.")
    customer_id: str = Field(description="The customer's id.")
    churn_risk: float | None = Field(description="P(churn) over the model's horizon.")
    churn: list[Contribution] = Field(description="Largest contributions to churn risk, strongest first.")
    offer_id: str | None = Field(description="The offer whose uplift is explained (null: no message chosen).")
    uplift: list[Contribution] = Field(description="Largest contributions to that offer's uplift, strongest first.")


class ExplainResponse(BaseModel):
    """Explanations for the known customers and per-item errors for the others."""

    model_config = _RESPONSE

    explanations: list[CustomerExplanation] = Field(description="One entry per known customer, in request order.")
    errors: list[ItemError] = Field(description="One entry per customer that could not be explained.")
    model: ModelInfo = Field(description="Models and data behind the explanations.")


class Metadata(ModelInfo):
    """GET /metadata: model versions, snapshot as-of time, catalog version."""

    offers: list[str] = Field(description="Offer ids in the catalog.", examples=[["discount_10", "reminder"]])
    snapshot_customers: int | None = Field(description="Customers in the snapshot.")
    last_reload: ReloadStatus | None = Field(
        description="The latest reload attempt (POST /reload or the NBO_RELOAD_SECONDS poll); null before any."
    )


class ReloadStatus(BaseModel):
    """What the latest attempt to load the registry alias's current version did."""

    model_config = _RESPONSE

    attempted_at: datetime = Field(description="When the attempt started (UTC).")
    outcome: Literal["reloaded", "unchanged", "failed"] = Field(
        description="`reloaded`: the new version serves now; `unchanged`: the alias still points at the serving "
        "version; `failed`: the new version did not load or failed its smoke prediction, the old one serves on.",
        examples=["reloaded"],
    )
    target_version: str | None = Field(
        description="Registry version the alias pointed at (null when the look-up itself failed).", examples=["4"]
    )
    error: str | None = Field(description="Why the attempt failed (null unless `failed`).")


class ReloadResponse(ReloadStatus):
    """POST /reload: the attempt and the model serving after it."""

    model: ModelInfo = Field(description="The model serving after the attempt.")


class ErrorDetail(BaseModel):
    """One problem with a request (pydantic's validation error, without the input value)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Machine-readable kind of problem, e.g. `missing`.", examples=["missing"])
    loc: list[str | int] = Field(description="Where: the path of the offending field.", examples=[["customers"]])
    msg: str = Field(description="What is wrong.", examples=["Field required"])


class ErrorResponse(BaseModel):
    """Body of every 4xx/5xx answer."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="What is wrong and how to fix it.")
    detail: list[ErrorDetail] | None = Field(
        default=None, description="For malformed bodies: one entry per offending field."
    )
