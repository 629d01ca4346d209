"""The one deployable next-best-offer model: churn + uplift + policy + catalog + send time.

`NboModel` is an MLflow pyfunc. `predict(model_input)` takes snapshot rows (plus optional
request-context columns such as consents, `unsubscribed_at`, `last_sent_at__<offer>`) and
returns the decisions table: one row per customer, flat scalar and string columns (reason codes
joined by ';', drivers by '; '), so the same object serves `mlflow.pyfunc.load_model`, the
BentoML service and `mlflow.pyfunc.spark_udf`. It is registered as `nbo` (alias `champion`).
Scoring (churn risk, per-offer uplift, baseline conversion, customer value) happens here; the
decision itself is `models.policy.decide`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from sklearn.utils.validation import check_is_fitted

from features.catalog import Catalog
from models.churn import ChurnClassifier
from models.contributions import churn_contributions, uplift_contributions
from models.frame_blocks import is_consolidated
from models.policy import DECISION_COLUMNS, Decisions, decide
from models.policy_config import BASELINE_CONVERT, NO_MESSAGE, PolicyConfig, column_for
from models.policy_options import OptionGrid, utc_now
from models.policy_rules import NOT_SUPPRESSED, evaluate_rules, suppression_codes
from models.reasons import Contributions, describe_drivers
from models.send_time import SendTimeModel
from models.uplift_base import BaseUpliftLearner, FeatureEncoder, accepts_encoded, predict_outcome

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_NAME",
    "OUTCOMES",
    "CustomerValue",
    "NboModel",
    "UpliftModels",
    "UpliftPyfunc",
    "churn_contributions",
    "log_nbo_model",
    "merge_decisions",
]

MODEL_NAME = "nbo"
#: Outcomes an uplift bundle may model, and the decision input column each one feeds.
OUTCOMES: tuple[str, ...] = ("convert", "revenue", "unsubscribe")
AS_OF_COLUMN = "as_of"
EXPLAIN_MODES = ("messaged", "all", "none")
#: Chunks up to this many rows are copied (consolidated) before scoring; larger ones are not
#: (the copy would cost memory for no measurable gain).
SMALL_CHUNK_ROWS = 10_000
#: Below this many rows the rule pre-check (`skip_blocked`) costs more than the uplift scoring it
#: saves (measured: 1, 20 and 200 rows 1-2.5 ms slower with it, 1,000 rows 2.5 ms faster); the
#: decisions are the same either way.
SKIP_BLOCKED_MIN_ROWS = 500


# ----------------------------------------------------------------------------------------------
# The uplift bundle (what `nbo train uplift` registers as `uplift`)
# ----------------------------------------------------------------------------------------------


@dataclass
class UpliftModels:
    """Fitted multi-arm uplift learners per outcome, and the control arm's conversion model.

    `learners[outcome]` predicts one column per arm (`arms`); `baseline_convert` gives
    P(convert | control) in the outcome window, which prices a discount paid by customers who
    would have bought anyway. All read `feature_columns` of a snapshot row.
    """

    learners: dict[str, BaseUpliftLearner]
    baseline_convert: Any
    baseline_encoder: FeatureEncoder
    feature_columns: tuple[str, ...]
    window_days: float = 14.0
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def arms(self) -> tuple[str, ...]:
        """The offer ids the learners estimate effects for (control excluded)."""
        first = next(iter(self.learners.values()))
        return tuple(str(arm) for arm in first.arms_)

    def check_columns(self, frame: pd.DataFrame) -> None:
        """ValueError naming the feature columns `frame` lacks."""
        present = set(frame.columns.tolist())  # set look-ups: Index look-ups cost ~1 µs per column
        missing = [column for column in self.feature_columns if column not in present]
        if missing:
            raise ValueError(
                f"the uplift models need {len(missing)} snapshot columns the input lacks, e.g. {missing[:5]}; "
                "build the snapshot with the feature set the models were trained on"
            )

    def predict_columns(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Decision input columns: `uplift_<outcome>__<offer>` per modelled outcome and `p_convert__control`."""
        return pd.DataFrame(self.predict_arrays(frame), index=frame.index)

    def predict_arrays(self, frame: pd.DataFrame) -> dict[str, NDArray[np.float64]]:
        """`predict_columns` as one array per column name: the nbo model adds them to its own frame
        (building this frame and reading it back cost more than the trees for one customer)."""
        self.check_columns(frame)
        as_array = self.scores_encoded_arrays()
        # The array encoding reads only its encoder's columns: selecting ~140 columns first cost
        # more than encoding one row.
        features = frame if as_array else frame[list(self.feature_columns)]
        encodings: list[tuple[FeatureEncoder, Any]] = []

        def encode(encoder: FeatureEncoder) -> pd.DataFrame | NDArray[np.float64]:
            # Learners and the baseline fitted on the same columns share one encoding: encoding
            # (per-column pandas work) cost more than the trees when deciding for one customer.
            # As one float matrix when every model takes it (the booster then skips pandas).
            for known, encoded in encodings:
                if known == encoder:
                    return encoded
            encodings.append((encoder, encoder.transform_array(features) if as_array else encoder.transform(features)))
            return encodings[-1][1]

        columns: dict[str, NDArray[np.float64]] = {}
        for outcome, learner in self.learners.items():
            if outcome not in OUTCOMES:
                raise ValueError(f"uplift bundle has unknown outcome {outcome!r}; expected one of {OUTCOMES}")
            if _predicts_from_encoder(learner):  # what BaseUpliftLearner.predict does, with the shared encoding
                check_is_fitted(learner, "arms_")
                effects = learner._predict_uplift(encode(learner.encoder_))
            else:
                effects = learner.predict(features)
            for position, arm in enumerate(learner.arms_):
                columns[column_for(f"uplift_{outcome}", str(arm))] = effects[:, position]
        if self.baseline_convert is not None:
            columns[BASELINE_CONVERT] = predict_outcome(self.baseline_convert, encode(self.baseline_encoder))
        return columns

    def scores_encoded_arrays(self) -> bool:
        """True when every learner and the baseline model can score `FeatureEncoder.transform_array`
        rows (LightGBM models trained on their encoder's output): same numbers, no pandas per call.
        Worked out once per loaded bundle."""
        cached = self.__dict__.get("_scores_encoded_arrays")
        if cached is None:
            cached = all(
                _predicts_from_encoder(learner) and learner._accepts_encoded() for learner in self.learners.values()
            ) and (self.baseline_convert is None or accepts_encoded(self.baseline_convert, self.baseline_encoder))
            self.__dict__["_scores_encoded_arrays"] = cached
        return cached


def _predicts_from_encoder(learner: Any) -> bool:
    """True when `learner.predict` is `BaseUpliftLearner.predict`: encode with `encoder_`, then `_predict_uplift`."""
    return type(learner).predict is BaseUpliftLearner.predict and isinstance(
        getattr(learner, "encoder_", None), FeatureEncoder
    )


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """`UpliftModels` as a pyfunc: predict returns the uplift and baseline columns per row."""

    def __init__(self, models: UpliftModels) -> None:
        self.models = models

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Per-row `uplift_<outcome>__<offer>` and `p_convert__control`."""
        return self.models.predict_columns(model_input).reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# Customer value and explanations
# ----------------------------------------------------------------------------------------------


class CustomerValue(BaseModel):
    """How money per customer enters the decision beyond the catalog.

    `subscriber_value` (what an unsubscribe costs) = `messaging_share` x `margin_rate` x the
    customer's spend over the last year + `floor`: the share of a year's margin the messages
    keep alive. Customers without orders get `fallback_order_value` as their order value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    spend_column: str = Field(default="monetary_365d", description="yearly spend feature")
    margin_rate: float = Field(default=0.4, ge=0, le=1, description="gross margin on the yearly spend")
    messaging_share: float = Field(default=0.2, ge=0, le=1, description="share of the margin messaging keeps")
    floor: float = Field(default=1.0, ge=0, description="value of any reachable subscriber")
    fallback_order_value: float = Field(default=50.0, ge=0, description="order value of customers without orders")
    baseline_convert: float = Field(
        default=0.05, ge=0, le=1, description="P(convert | no message) when no model or input column gives it"
    )

    def subscriber_value(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Per-customer value of keeping the channel (money)."""
        if self.spend_column not in frame.columns:
            raise ValueError(
                f"column {self.spend_column!r} (yearly spend) is missing; it prices the unsubscribe harm. "
                "Build the snapshot with the RFM family or set CustomerValue.spend_column"
            )
        spend = frame[self.spend_column].to_numpy(dtype=float, na_value=0.0)
        return self.floor + self.messaging_share * self.margin_rate * np.clip(np.nan_to_num(spend), 0.0, None)


def _added_frame(columns: dict[str, Any], index: pd.Index) -> pd.DataFrame:
    """`pd.DataFrame(columns, index=index)`: float64 vectors (the scores) stacked into its one block
    directly, half the constructor's time for one customer; other values through the constructor."""
    values = list(columns.values())
    if values and all(
        isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == (len(index),) for value in values
    ):
        return pd.DataFrame(np.vstack(values).T, columns=list(columns), index=index, copy=False)
    return pd.DataFrame(columns, index=index)


def set_prediction_threads(obj: Any, threads: int, _seen: set[int] | None = None) -> int:
    """Set the prediction threads (`n_jobs`) of every fitted LightGBM model inside `obj` (learners,
    bundles, lists, tuples, dicts); returns how many were set."""
    import lightgbm as lgb

    seen = set() if _seen is None else _seen
    if obj is None or id(obj) in seen or isinstance(obj, (str, bytes, int, float, np.ndarray, pd.DataFrame)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, lgb.LGBMModel):
        obj.set_params(n_jobs=threads)
        return 1
    if isinstance(obj, (list, tuple, set)):
        return sum(set_prediction_threads(item, threads, seen) for item in obj)
    if isinstance(obj, dict):
        return sum(set_prediction_threads(item, threads, seen) for item in obj.values())
    if type(obj).__module__.split(".")[0] in ("models", "training") or hasattr(obj, "__dataclass_fields__"):
        return sum(set_prediction_threads(item, threads, seen) for item in vars(obj).values())
    return 0


def merge_decisions(parts: Sequence[Decisions]) -> Decisions:
    """Decisions of consecutive chunks of customers as one (same catalog and channels)."""
    if not parts:
        raise ValueError("no decisions to merge")
    if len(parts) == 1:
        return parts[0]
    return Decisions(
        table=pd.concat([part.table for part in parts], ignore_index=True),
        option_labels=parts[0].option_labels,
        suppression=np.vstack([part.suppression for part in parts]),
        values=np.vstack([part.values for part in parts]),
    )


# ----------------------------------------------------------------------------------------------
# The deployable model
# ----------------------------------------------------------------------------------------------


class NboModel(mlflow.pyfunc.PythonModel):
    """Churn model, uplift models, catalog, policy settings and send-time model in one object.

    `threads` sets LightGBM's prediction threads (None: as trained); `skip_blocked` skips uplift
    scoring for customers the hard rules leave without any option (decisions are identical).
    `explain` chooses which SHAP drivers are written: "messaged" (default: churn and uplift
    drivers for customers who get a message; everyone gets rule reason codes), "all" (churn
    drivers for everyone too; TreeSHAP then costs ~90 s per million customers here) or "none".
    """

    def __init__(
        self,
        churn_model: ChurnClassifier | None,
        uplift_models: UpliftModels | None,
        catalog: Catalog,
        config: PolicyConfig | None = None,
        *,
        send_time_model: SendTimeModel | None = None,
        value: CustomerValue | None = None,
        explain: str = "messaged",
        chunk_size: int = 200_000,
        threads: int | None = None,
        skip_blocked: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.churn_model = churn_model
        self.uplift_models = uplift_models
        self.catalog = catalog
        self.config = config or PolicyConfig()
        self.send_time_model = send_time_model
        self.value = value or CustomerValue()
        self.explain = explain
        self.chunk_size = chunk_size
        self.threads = threads
        self.skip_blocked = skip_blocked
        self._threads_set: int | None = None
        self.metadata = dict(metadata or {})

    # -- inputs --------------------------------------------------------------------------------
    def required_columns(self) -> list[str]:
        """Snapshot columns the scoring models read (besides customer_id and lifecycle_stage)."""
        needed: list[str] = []
        if self.churn_model is not None:
            needed += [str(name) for name in self.churn_model.feature_names_in_]
        if self.uplift_models is not None:
            needed += list(self.uplift_models.feature_columns)
        needed += [self.value.spend_column, self.config.order_value_column]
        return list(dict.fromkeys(needed))

    def blocked_by_rules(self, frame: pd.DataFrame, now: object, as_of: object | None = None) -> NDArray[np.bool_]:
        """Customers for whom a hard rule removes every option whatever its value (holdout, no
        consent, lifecycle, cooldown, frequency cap...): their uplift scores cannot change the
        decision, so scoring them is skipped (their uplift columns read 0)."""
        grid = OptionGrid.cached(self.catalog, self.config.channels)
        priced = set(self.config.uplift_priors) | set(self.uplift_models.arms if self.uplift_models else ())
        source = np.array([offer.offer_id in priced for offer in grid.offers], dtype=bool)
        masks = evaluate_rules(
            frame, grid, self.config, utc_now(now),
            has_estimate=np.broadcast_to(source, (len(frame), len(source))), offers_without_source=~source,
            as_of=as_of,
        )  # fmt: skip
        return (suppression_codes(masks, grid, len(frame)) != NOT_SUPPRESSED).all(axis=1)

    def decision_inputs(
        self, frame: pd.DataFrame, now: object | None = None, as_of: object | None = None
    ) -> tuple[pd.DataFrame, Contributions | None]:
        """The frame with churn risk, uplift columns, baseline conversion and customer values added.

        Returns it with the churn contributions (None unless explaining everyone). With `now`,
        customers `blocked_by_rules` are not scored by the uplift models.
        """
        names = frame.columns.tolist()
        present = set(names)  # set look-ups: Index look-ups cost ~1 µs per column
        missing = [
            column
            for column in (self.config.customer_id_column, self.config.lifecycle_column, *self.required_columns())
            if column not in present
        ]
        if missing:
            raise ValueError(
                f"the decision input lacks {len(missing)} columns the nbo model reads, e.g. {missing[:5]}; "
                "pass snapshot rows built with the models' feature set (see `nbo features build`)"
            )
        added: dict[str, Any] = {}
        contributions = None
        if self.churn_model is not None:
            churn_features = self._churn_features(frame)
            added[self.config.churn_risk_column] = self.churn_model.predict_proba(churn_features)[:, 1]
            if self.explain == "all" and self.config.top_k_drivers > 0:
                contributions = churn_contributions(self.churn_model, churn_features)
        if self.uplift_models is not None:
            added.update(self._uplift_columns(frame, now, as_of))
        if BASELINE_CONVERT not in added and BASELINE_CONVERT not in present:
            added[BASELINE_CONVERT] = np.full(len(frame), self.value.baseline_convert)
        added[self.config.subscriber_value_column] = self.value.subscriber_value(frame)
        order_value = frame[self.config.order_value_column].to_numpy(dtype=float, na_value=np.nan)
        added[self.config.order_value_column] = np.where(
            np.isfinite(order_value) & (order_value > 0), order_value, self.value.fallback_order_value
        )
        # The columns added replace those of the same name, which move to the end. Taking the kept
        # columns by position cost less than dropping the replaced ones by name.
        kept = [position for position, name in enumerate(names) if name not in added]
        unchanged = frame if len(kept) == len(names) else frame.take(kept, axis=1)
        scored = pd.concat([unchanged, _added_frame(added, frame.index)], axis=1)
        return scored, contributions

    def _churn_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What the churn model is fed: `ChurnClassifier` reads its own columns from the whole frame
        (selecting them first cost more than scoring one row); any other classifier gets exactly the
        columns it was fitted on (scikit-learn rejects extra ones)."""
        if isinstance(self.churn_model, ChurnClassifier):
            return frame
        return frame[[str(name) for name in self.churn_model.feature_names_in_]]

    def _uplift_columns(self, frame: pd.DataFrame, now: object | None, as_of: object | None) -> dict[str, Any]:
        if now is None or not getattr(self, "skip_blocked", True) or len(frame) < SKIP_BLOCKED_MIN_ROWS:
            return self.uplift_models.predict_arrays(frame)
        scored_rows = np.flatnonzero(~self.blocked_by_rules(frame, now, as_of))
        if len(scored_rows) == len(frame):
            return self.uplift_models.predict_arrays(frame)
        if len(scored_rows):
            predicted = self.uplift_models.predict_arrays(frame.iloc[scored_rows])
        else:  # only the column names
            predicted = dict.fromkeys(self.uplift_models.predict_arrays(frame.iloc[:1]), np.empty(0))
        columns = {}
        for name, predicted_values in predicted.items():
            values = np.zeros(len(frame))
            values[scored_rows] = np.asarray(predicted_values, dtype=float)
            columns[name] = values
        return columns

    # -- deciding ------------------------------------------------------------------------------
    def decisions(self, frame: pd.DataFrame, now: object | None = None, as_of: object | None = None) -> Decisions:
        """Full decisions (table, per-option suppression codes and values) for snapshot rows.

        `as_of` defaults to the frame's single `as_of` value, `now` to `as_of`.
        """
        if self.explain not in EXPLAIN_MODES:
            raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got {self.explain!r}")
        if len(frame) == 0:
            raise ValueError("the decision input has no rows")
        as_of = self._as_of(frame) if as_of is None else as_of
        now = as_of if now is None else now
        if now is None:
            raise ValueError("give the decision time `now` (params) or an `as_of` column in the input")
        parts = []
        size = max(1, int(self.chunk_size))
        for start in range(0, len(frame), size):
            part = frame if len(frame) <= size else frame.iloc[start : start + size]
            parts.append(self._decide_chunk(part, now, as_of))
        return merge_decisions(parts)

    def _as_of(self, frame: pd.DataFrame) -> pd.Timestamp | None:
        if AS_OF_COLUMN not in frame.columns:
            return None
        column = frame[AS_OF_COLUMN]
        if column.dtype.kind == "M" and getattr(column.dtype, "tz", None) is None:  # the usual case, without pandas
            stamps = column.to_numpy()
            values = np.unique(stamps[~np.isnat(stamps)])
        else:
            values = pd.to_datetime(column).dropna().unique()
        if len(values) > 1:
            raise ValueError(
                f"the input mixes {len(values)} snapshot times in {AS_OF_COLUMN!r} (e.g. {list(values[:2])}); "
                "decide one snapshot at a time or pass params={'as_of': ...}"
            )
        return pd.Timestamp(values[0]) if len(values) else None

    def _decide_chunk(self, frame: pd.DataFrame, now: object, as_of: object | None) -> Decisions:
        threads = getattr(self, "threads", None)  # models pickled before these settings existed
        if threads is not None and getattr(self, "_threads_set", None) != threads:
            set_prediction_threads((self.churn_model, self.uplift_models), threads)
            self._threads_set = threads
        index = frame.index
        if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
            frame = frame.reset_index(drop=True)
        if len(frame) <= SMALL_CHUNK_ROWS and not is_consolidated(frame):
            # One copy consolidates a snapshot row's ~150 single-column blocks into a dozen: the many
            # column selections below then cost less (a tenth off deciding one customer). Frames
            # already consolidated (the service's) gain nothing from it.
            frame = frame.copy()
        scored, contributions = self.decision_inputs(frame, now, as_of)
        decisions = decide(
            scored,
            self.catalog,
            now,
            self.config,
            as_of=as_of,
            send_time_model=self.send_time_model,
            churn_contributions=contributions,
        )
        if self.explain != "none" and self.config.top_k_drivers > 0:
            self._explain_messaged(scored, decisions, churn=contributions is None)
        return decisions

    def _explain_messaged(self, scored: pd.DataFrame, decisions: Decisions, *, churn: bool) -> None:
        """Fill driver phrases for messaged customers only (uplift drivers; churn when asked)."""
        table = decisions.table
        offer = table["offer_id"].to_numpy(dtype=object)
        messaged = np.flatnonzero(offer != NO_MESSAGE)
        if len(messaged) == 0:
            return
        top_k = self.config.top_k_drivers
        if churn and self.churn_model is not None:
            rows = scored.iloc[messaged]
            phrases = describe_drivers(
                churn_contributions(self.churn_model, self._churn_features(rows)), rows, top_k=top_k
            )
            table.loc[messaged, "churn_drivers"] = pd.array(phrases, dtype="str")
        learner = None if self.uplift_models is None else self.uplift_models.learners.get("convert")
        if learner is None:
            return
        for arm in self.uplift_models.arms:
            rows_index = messaged[offer[messaged] == arm]
            if len(rows_index) == 0:
                continue
            rows = scored.iloc[rows_index]
            contributions = uplift_contributions(learner, rows[list(self.uplift_models.feature_columns)], arm)
            if contributions is None:
                return
            phrases = describe_drivers(contributions, rows, top_k=top_k, raises="raises uplift", lowers="lowers uplift")
            table.loc[rows_index, "uplift_drivers"] = pd.array(phrases, dtype="str")

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The decisions table (`models.policy.DECISION_COLUMNS`) for snapshot rows.

        `params`: `now` (decision time, default the snapshot's as-of) and `as_of`.
        """
        if not isinstance(model_input, pd.DataFrame):
            raise ValueError(f"the nbo model takes a DataFrame of snapshot rows, got {type(model_input).__name__}")
        params = dict(params or {})
        now = params.get("now") or None
        as_of = params.get("as_of") or None
        table = self.decisions(model_input, now=now, as_of=as_of).table
        return table if tuple(table.columns.tolist()) == DECISION_COLUMNS else table[list(DECISION_COLUMNS)]


# ----------------------------------------------------------------------------------------------
# Logging to MLflow
# ----------------------------------------------------------------------------------------------


def _column_type(dtype: Any) -> str:
    """The MLflow column type of a pandas dtype (MLflow never casts between long and double)."""
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "long"
    if pd.api.types.is_numeric_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def context_columns(model: NboModel) -> dict[str, str]:
    """Request-context columns the policy reads (optional inputs), with their MLflow types."""
    config = model.config
    columns = {
        config.timezone_column: "string",
        "unsubscribed_at": "datetime",
        config.messages_sent_name: "double",
        config.last_message_column: "datetime",
        config.last_purchase_column: "datetime",
        config.failed_payment_column: "double",
    }
    for channel in config.channels:
        columns[f"{channel}_consent"] = "boolean"
        for flag in config.blocking_flags:
            columns[f"{channel}_{flag}"] = "double"
    for offer_id in model.catalog.offer_ids:
        columns[column_for("last_sent_at", offer_id)] = "datetime"
        columns[column_for("days_since_sent", offer_id)] = "double"
    return columns


def _signature(model: NboModel, example_input: pd.DataFrame, example_output: pd.DataFrame) -> Any:
    """Every snapshot and context column as an optional input (the model checks what it needs
    and names what is missing; MLflow drops columns not listed), the output columns, and the
    `now`/`as_of` params."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    types = {column: _column_type(example_input[column].dtype) for column in example_input.columns}
    for column, kind in context_columns(model).items():
        types.setdefault(column, kind)
    inputs = Schema([ColSpec(kind, name, required=False) for name, kind in types.items()])
    outputs = Schema([ColSpec(_column_type(example_output[name].dtype), name) for name in example_output.columns])
    params = ParamSchema([ParamSpec("now", "string", ""), ParamSpec("as_of", "string", "")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def log_nbo_model(
    model: NboModel,
    example_input: pd.DataFrame,
    *,
    registered_name: str | None = MODEL_NAME,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Log the model as a pyfunc (with signature from a few example rows); register it when named.

    Returns MLflow's ModelInfo (`registered_model_version` holds the new version).
    """
    import lightgbm
    import sklearn

    example = example_input.head(5).reset_index(drop=True)
    output = model.predict(None, example)
    requirements = [
        f"lightgbm=={lightgbm.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
        signature=_signature(model, example, output),
        registered_model_name=registered_name,
        pip_requirements=requirements,
        tags=dict(tags or {}),
    )


# ----------------------------------------------------------------------------------------------
# Assembling and registering
# ----------------------------------------------------------------------------------------------


def fit_send_time_model(snapshot: pd.DataFrame, segment_column: str = "rfm_segment") -> SendTimeModel | None:
    """The send-time model fitted on a snapshot's response profiles (None without timing features)."""
    from models.send_time import profile_counts

    try:
        hour_counts, weekday_counts = profile_counts(snapshot)
    except ValueError as error:
        logger.warning("no send-time model: %s", error)
        return None
    segments = snapshot[segment_column].to_numpy(dtype=object) if segment_column in snapshot.columns else None
    return SendTimeModel().fit(hour_counts, weekday_counts, segments=segments)


def assemble_nbo_model(
    churn_model: ChurnClassifier | None,
    uplift_models: UpliftModels | None,
    catalog: Catalog,
    snapshot: pd.DataFrame,
    *,
    config: PolicyConfig | None = None,
    value: CustomerValue | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> NboModel:
    """An NboModel whose send-time model and fallback order value are learned from `snapshot`."""
    config = config or PolicyConfig()
    value = value or CustomerValue()
    order_values = snapshot[config.order_value_column].to_numpy(dtype=float, na_value=np.nan)
    order_values = order_values[np.isfinite(order_values) & (order_values > 0)]
    if len(order_values):
        value = value.model_copy(update={"fallback_order_value": float(np.median(order_values))})
    send_time_model = fit_send_time_model(snapshot, config.segment_column)
    return NboModel(
        churn_model, uplift_models, catalog, config, send_time_model=send_time_model, value=value, metadata=metadata
    )


def load_champions(
    churn_uri: str = "models:/churn@champion", uplift_uri: str = "models:/uplift@champion"
) -> tuple[ChurnClassifier, UpliftModels]:
    """The registered churn classifier and uplift bundle (by default their champions)."""
    from mlflow.exceptions import MlflowException

    try:
        churn_model = mlflow.sklearn.load_model(churn_uri)
    except MlflowException as error:
        raise ValueError(
            f"cannot load the churn model {churn_uri}: {error.message}; train one with `nbo train churn`"
        ) from None
    try:
        uplift = mlflow.pyfunc.load_model(uplift_uri).unwrap_python_model()
    except MlflowException as error:
        raise ValueError(
            f"cannot load the uplift model {uplift_uri}: {error.message}; train one with `nbo train uplift`"
        ) from None
    if not isinstance(churn_model, ChurnClassifier):
        raise ValueError(f"{churn_uri} holds a {type(churn_model).__name__}, not a churn classifier")
    if not isinstance(uplift, UpliftPyfunc):
        raise ValueError(f"{uplift_uri} holds a {type(uplift).__name__}, not an uplift bundle")
    return churn_model, uplift.models


def _version_of(uri: str) -> str:
    """The registry version a `models:/name@alias` URI points at ('' when not a registry alias)."""
    from mlflow import MlflowClient

    if not uri.startswith("models:/") or "@" not in uri:
        return ""
    name, alias = uri.removeprefix("models:/").split("@", 1)
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except Exception:  # only a tag; the load itself already succeeded
        return ""


def register_nbo_model(
    model: NboModel,
    example_input: pd.DataFrame,
    *,
    promote: bool = True,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Log `model` in a new run of experiment `nbo`, register it as `nbo`, move `champion` to it."""
    from training import tracking

    with mlflow.start_run(run_name="package") as run:
        tracking.log_params(
            {
                "catalog_version": model.catalog.version,
                "holdout_share": model.config.holdout_share,
                "exploration_share": model.config.exploration_share,
                "frequency_cap": model.config.frequency_cap,
                "explain": model.explain,
                **{f"value.{name}": item for name, item in model.value.model_dump().items()},
            }
        )
        mlflow.log_dict(model.config.model_dump(mode="json"), "policy_config.json")
        mlflow.log_dict(model.catalog.model_dump(mode="json"), "catalog.json")
        mlflow.set_tags({"model": MODEL_NAME, **dict(tags or {})})
        info = log_nbo_model(model, example_input, tags=tags)
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for name, item in (tags or {}).items():
            client.set_model_version_tag(MODEL_NAME, version, name, item)
        if promote:
            tracking.set_champion(MODEL_NAME, version)
    return {"run_id": run.info.run_id, "model_version": version, "model_uri": info.model_uri, "champion": promote}


def package_nbo(
    snapshot: pd.DataFrame,
    catalog: Catalog,
    *,
    churn_uri: str = "models:/churn@champion",
    uplift_uri: str = "models:/uplift@champion",
    config: PolicyConfig | None = None,
    value: CustomerValue | None = None,
    promote: bool = True,
    feature_set: str = "all",
) -> dict[str, Any]:
    """Assemble `nbo` from the registered churn and uplift models (default: champions), learn the
    send-time model from `snapshot`, and register it (champion unless `promote=False`)."""
    churn_model, uplift_models = load_champions(churn_uri, uplift_uri)
    tags = {
        "churn_uri": churn_uri,
        "churn_version": _version_of(churn_uri),
        "uplift_uri": uplift_uri,
        "uplift_version": _version_of(uplift_uri),
        "catalog_version": catalog.version,
        "decision_feature_set": feature_set,
    }
    model = assemble_nbo_model(
        churn_model, uplift_models, catalog, snapshot, config=config, value=value,
        metadata={"decision_feature_set": feature_set, **tags},
    )  # fmt: skip
    return register_nbo_model(model, snapshot, promote=promote, tags=tags)
