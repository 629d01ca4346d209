"""Batch decisions on Spark: `nbo decide --engine spark --data DIR --out decisions.parquet`.

The snapshot is the same Ibis expression as on DuckDB (`features.snapshot.snapshot_table`),
run by Spark; the customer context (consents, time zone, unsubscribe time, last send of every
catalog offer) is joined in Spark too, and the registered `nbo` model scores the rows through
`mlflow.pyfunc.spark_udf`, batch by batch on the executors, returning a struct of the decision
columns. Decisions do not depend on how rows are batched: holdout and exploration draws are
hashes of the customer id, so Spark and DuckDB decide alike for the same customers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from features.dataset import Dataset
from features.families.common import join_on_customer
from features.snapshot import output_dtype, parse_timestamp, snapshot_table
from features.spark import spark_dataframe, spark_dataframe_session
from features.storage import write_folder_atomic
from models.policy import DECISION_COLUMNS
from models.policy_config import NO_MESSAGE, column_for
from training.decide import CHAMPION_URI, CUSTOMER_COLUMNS, load_nbo_model
from training.nbo_model import AS_OF_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

logger = logging.getLogger(__name__)

__all__ = ["SparkDecideResult", "decide_on_engine", "decision_udf", "run_spark_decide", "spark_decision_frame"]

_SPARK_TYPES = {"int64": "bigint", "float64": "double", "str": "string"}
_MISSING_TEXT = ("NaT", "None", "nan", "")  # how MLflow writes a missing value as text


@dataclass
class SparkDecideResult:
    """What a Spark batch run produced: totals, where the decisions went, stage seconds."""

    summary: dict[str, Any]
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)


def _context_table(dataset: Dataset, as_of: pd.Timestamp, offer_ids: Sequence[str]) -> ir.Table | None:
    """Consents, time zone, unsubscribe time and the last send of each offer before `as_of`,
    per customer, as one lazy table (`training.decide.customer_context`, in Ibis)."""
    cutoff = ibis.timestamp(as_of.to_pydatetime())
    context = None
    if dataset.has("customers"):
        customers = dataset["customers"]
        present = [column for column in CUSTOMER_COLUMNS if column in customers.columns]
        context = customers.select("customer_id", *present)
    parts = []
    if dataset.has("events") and "offer_id" in dataset["events"].columns:
        events = dataset["events"]
        is_send = (events.event_type == "send") & events.offer_id.isin(list(offer_ids))
        sends = events.filter(is_send & (events.ts < cutoff))
        parts.append(sends.select("customer_id", "offer_id", sent_at=sends.ts))
    if dataset.has("exposures"):
        exposures = dataset["exposures"]
        assigned = exposures.filter(exposures.offer_id.isin(list(offer_ids)) & (exposures.assigned_at < cutoff))
        parts.append(assigned.select("customer_id", "offer_id", sent_at=assigned.assigned_at))
    if parts:
        union = parts[0] if len(parts) == 1 else parts[0].union(parts[1])
        latest = {
            column_for("last_sent_at", offer): ibis.ifelse(union.offer_id == offer, union.sent_at, ibis.null()).max()
            for offer in offer_ids
        }
        last = union.group_by("customer_id").aggregate(**latest)
        context = last if context is None else join_on_customer(context, last)
    return context


def spark_decision_frame(
    dataset: Dataset, as_of: object, offer_ids: Sequence[str], feature_set: str = "all"
) -> DataFrame:
    """The decision input on Spark: snapshot features (declared types), `as_of`, customer context."""
    as_of = parse_timestamp(as_of, "--as-of")
    snapshot, outputs = snapshot_table(dataset, as_of, feature_set=feature_set)
    context = _context_table(dataset, as_of, offer_ids)
    if context is not None:
        overlap = [column for column in context.columns if column != "customer_id" and column in outputs]
        snapshot = join_on_customer(snapshot, context.drop(*overlap))
    frame = spark_dataframe(snapshot)
    from pyspark.sql import functions as F

    columns = [F.col("customer_id"), F.lit(as_of.to_pydatetime()).cast("timestamp_ntz").alias(AS_OF_COLUMN)]
    for name in frame.columns[1:]:
        kind = _SPARK_TYPES[output_dtype(name)] if name in outputs else None
        columns.append(F.col(name).cast(kind).alias(name) if kind else F.col(name))
    return frame.select(*columns)


def decision_udf(
    session: Any, model_uri: str = CHAMPION_URI, *, now: object | None = None, as_of: object | None = None
) -> Any:
    """The `nbo` model as a Spark UDF taking one struct of input columns, returning a struct of
    `DECISION_COLUMNS` (its signature's output). `now` and `as_of` are passed as model params."""
    import mlflow
    from mlflow.pyfunc import _infer_spark_udf_return_type
    from pyspark.sql.types import StringType, StructField, StructType, TimestampNTZType, TimestampType

    params = {"now": "" if now is None else str(parse_timestamp(now, "--now")), "as_of": ""}
    if as_of is not None:
        params["as_of"] = str(parse_timestamp(as_of, "--as-of"))
    output_schema = mlflow.models.get_model_info(model_uri).signature.outputs
    inferred = _infer_spark_udf_return_type(output_schema)
    # MLflow cannot return timestamps inside a struct: they travel as text (`as_timestamps`)
    result_type = StructType(
        [
            StructField(item.name, StringType() if isinstance(item.dataType, (TimestampType, TimestampNTZType))
                        else item.dataType)
            for item in inferred.fields
        ]
    )  # fmt: skip
    udf = mlflow.pyfunc.spark_udf(session, model_uri, result_type=result_type, env_manager="local", params=params)
    return udf, [item.name for item in inferred.fields if isinstance(item.dataType, (TimestampType, TimestampNTZType))]


def _summary(decisions: DataFrame) -> dict[str, Any]:
    from pyspark.sql import functions as F

    messaged = F.col("offer_id") != NO_MESSAGE
    row = decisions.agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum(messaged.cast("long")).alias("messages"),
        F.sum(F.col("holdout").cast("long")).alias("holdout"),
        F.sum(F.col("explored").cast("long")).alias("explored"),
        F.sum(F.when(messaged, F.col("expected_value")).otherwise(0.0)).alias("expected_value"),
    ).collect()[0]
    return {key: (row[key] or 0) for key in ("customers", "messages", "holdout", "explored", "expected_value")}


def run_spark_decide(
    dataset: Dataset,
    as_of: object,
    out: str | Path,
    *,
    model_uri: str = CHAMPION_URI,
    now: object | None = None,
    feature_set: str | None = None,
) -> SparkDecideResult:
    """Decide for every customer at `as_of` on Spark and write the decisions as Parquet to `out`
    (a folder of parts, Spark's layout; pandas, pyarrow and DuckDB read it as one table). A
    previous `out` is replaced only once the new folder is complete."""
    session = spark_dataframe_session(dataset.con)
    seconds: dict[str, float] = {}
    as_of = parse_timestamp(as_of, "--as-of")
    started = time.perf_counter()
    nbo = load_nbo_model(model_uri)
    feature_set = feature_set or nbo.metadata.get("decision_feature_set", "all")
    udf, timestamp_columns = decision_udf(session, model_uri, now=now, as_of=as_of)
    seconds["load_model"] = time.perf_counter() - started

    started = time.perf_counter()
    frame = spark_decision_frame(dataset, as_of, nbo.catalog.offer_ids, feature_set=feature_set)
    seconds["plan"] = time.perf_counter() - started

    from pyspark.sql import functions as F

    started = time.perf_counter()
    decided = frame.select(udf(F.struct(*frame.columns)).alias("decision")).select("decision.*")
    # MLflow casts a struct's text fields with numpy `str`, so a missing value arrives as "nan"
    text_columns = {
        item.name
        for item in decided.schema.fields
        if item.dataType.simpleString() == "string" and item.name != "customer_id"
    }
    decided = decided.select(
        *(
            F.when(F.col(name).isin(*_MISSING_TEXT), None).otherwise(F.col(name)).cast("timestamp_ntz").alias(name)
            if name in timestamp_columns
            else F.when(F.col(name).isin(*_MISSING_TEXT[:3]), None).otherwise(F.col(name)).alias(name)
            if name in text_columns
            else F.col(name)
            for name in DECISION_COLUMNS
        )
    )  # fmt: skip
    # Spark writes the parts into a staging folder that replaces `out` only when complete.
    write_folder_atomic(out, lambda staging: decided.write.mode("overwrite").parquet(str(staging)))
    seconds["snapshot_decide_write"] = time.perf_counter() - started
    started = time.perf_counter()
    summary = _summary(session.read.parquet(str(out)))
    seconds["summary"] = time.perf_counter() - started
    logger.info(
        "decided %d customers on Spark as of %s: %d messages (%s)",
        summary["customers"], as_of, summary["messages"],
        ", ".join(f"{name} {value:.1f}s" for name, value in seconds.items()),
    )  # fmt: skip
    return SparkDecideResult(summary, Path(out), seconds)


def decide_on_engine(
    engine: str,
    data: Path,
    as_of: str,
    out: Path,
    *,
    model_uri: str = CHAMPION_URI,
    now: str | None = None,
    feature_set: str | None = None,
    summary_json: Path | None = None,
    validate: bool = True,
) -> SparkDecideResult:
    """`nbo decide --engine spark`: open the folder on Spark, decide, write, print the totals."""
    import json

    from features.spark import open_engine_dataset
    from features.storage import write_atomic
    from training.cli_common import console, friendly_errors, resolve_as_of, stage_progress
    from training.tracking import default_tracking_uri

    with friendly_errors():
        if engine != "spark":
            raise ValueError(f"unknown engine {engine!r}; choose duckdb or spark")
        import mlflow

        mlflow.set_tracking_uri(default_tracking_uri())
        dataset = open_engine_dataset(data, engine, validate=validate)
        resolved = resolve_as_of(as_of, data, dataset)
        with stage_progress("deciding on Spark") as progress:
            progress("snapshot and decisions", 0.1)
            result = run_spark_decide(dataset, resolved, out, model_uri=model_uri, now=now, feature_set=feature_set)
        if summary_json is not None:
            text = json.dumps({**result.summary, "seconds": result.seconds, "out": str(out)}, indent=2, default=str)
            write_atomic(summary_json, lambda tmp: tmp.write_text(text))
    summary = result.summary
    console.print(
        f"[bold]{summary['customers']:,}[/] customers: [bold]{summary['messages']:,}[/] messages, "
        f"holdout {summary['holdout']:,}, explored {summary['explored']:,}, "
        f"expected incremental profit {summary['expected_value']:,.2f}"
    )
    console.print("timings: " + ", ".join(f"{name} {value:.1f}s" for name, value in result.seconds.items()))
    console.print(f"Wrote {summary['customers']:,} decisions to {out} (a folder of Parquet parts)")
    return result
