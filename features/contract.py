"""The data contract: table schemas, type coercion and validation with readable errors.

Every table is coerced to the contract's types (customer_id string, timestamps tz-naive UTC
`datetime64[us]`) and checked with pandera; all problems of all tables are collected and raised
once as a `DataContractError` whose message names table, column, row count, examples and a fix.
Row numbers in messages are 0-based positions in the frame as given (CSV line = row + 2).
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache, partial
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from features.dataset import TABLE_NAMES

logger = logging.getLogger(__name__)

TABLES: tuple[str, ...] = TABLE_NAMES
CHANNELS = ("email", "sms", "push", "web", "app")
EVENT_TYPES = (
    "send", "open", "click", "unsubscribe", "bounce", "complaint", "visit", "login",
    "feature_use", "support_ticket", "payment_failed",
)  # fmt: skip
SUBSCRIPTION_STATUSES = ("active", "cancelled", "past_due")
CONTROL_OFFER_ID = "control"
MAX_EXAMPLES = 3


# ----------------------------------------------------------------------------------------------
# Problems and the error that carries them
# ----------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A short, unambiguous rendering of a cell for error messages (strings quoted)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return "null"
    if isinstance(value, tuple):
        return "(" + ", ".join(format_value(part) for part in value) + ")"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, datetime | date):
        return str(value)
    return repr(value)


@dataclass(frozen=True)
class Problem:
    """One kind of defect in one column (or table): how many rows, a few examples, a fix."""

    table: str
    column: str | None
    issue: str
    rows: int | None = None
    examples: tuple[tuple[int, Any], ...] = ()
    hint: str = ""

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def __str__(self) -> str:
        if self.rows is None:
            text = f"{self.where}: {self.issue}"
        else:
            noun, verb = ("row", "is") if self.rows == 1 else ("rows", "are")
            text = f"{self.where}: {self.rows} {noun} {verb} {self.issue}"
            if self.examples:
                shown = ", ".join(f"row {row}: {format_value(v)}" for row, v in self.examples)
                text += f" (examples: {shown})"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text if text.endswith(".") else text + "."


class DataContractError(ValueError):
    """Input data breaks the contract; `problems` lists every defect found, all tables at once."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        lines = [str(problem) for problem in self.problems]
        if len(lines) == 1:
            message = lines[0]
        else:
            message = f"{len(lines)} problems in the input data:\n" + "\n".join(
                f"  - {line}" for line in lines
            )
        super().__init__(message)


# ----------------------------------------------------------------------------------------------
# The schema: columns, kinds and rules
# ----------------------------------------------------------------------------------------------

# Column kinds: how a column is coerced. "id" and "string" become pandas strings (an id given
# as a float like 12346.0 becomes "12346"); "enum" is a lower-cased string checked against values.
KINDS = ("id", "string", "enum", "timestamp", "float", "int", "bool")


@dataclass(frozen=True)
class ColumnSpec:
    """One contract column: its kind, whether it is required and which value rule applies."""

    name: str
    kind: str
    required: bool = False
    rule: str | None = None
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its columns, unique key and whether it points at customers."""

    name: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    references_customers: bool = True
    past_time_columns: tuple[str, ...] = ()
    hints: Mapping[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)

    def column(self, name: str) -> ColumnSpec:
        return next(column for column in self.columns if column.name == name)


SCHEMAS: dict[str, TableSpec] = {
    "customers": TableSpec(
        "customers",
        (
            ColumnSpec("customer_id", "id", required=True),
            ColumnSpec("signup_at", "timestamp"),
            ColumnSpec("acquisition_channel", "string"),
            ColumnSpec("timezone", "string", rule="timezone"),
            ColumnSpec("email_consent", "bool"),
            ColumnSpec("sms_consent", "bool"),
            ColumnSpec("push_consent", "bool"),
            ColumnSpec("unsubscribed_at", "timestamp"),
        ),
        key=("customer_id",),
        references_customers=False,
        past_time_columns=("signup_at", "unsubscribed_at"),
        hints={"duplicate": "customer_id must be unique in customers; keep one row per customer"},
    ),
    "transactions": TableSpec(
        "transactions",
        (
            ColumnSpec("customer_id", "id", required=True),
            ColumnSpec("ts", "timestamp", required=True),
            ColumnSpec("amount", "float", required=True, rule="amount"),
            ColumnSpec("order_id", "id"),
            ColumnSpec("product_id", "id"),
            ColumnSpec("category", "string"),
            ColumnSpec("quantity", "int", rule="at_least_one"),
            ColumnSpec("discount_amount", "float", rule="non_negative"),
        ),
        key=("order_id", "product_id"),
        past_time_columns=("ts",),
        hints={
            "duplicate": "(order_id, product_id) must be unique; sum quantity and amount per "
            "order line, or leave product_id empty for order-level rows",
        },
    ),
    "events": TableSpec(
        "events",
        (
            ColumnSpec("customer_id", "id", required=True),
            ColumnSpec("ts", "timestamp", required=True),
            ColumnSpec("channel", "enum", required=True, rule="enum", allowed=CHANNELS),
            ColumnSpec("event_type", "enum", required=True, rule="enum", allowed=EVENT_TYPES),
            ColumnSpec("campaign_id", "id"),
            ColumnSpec("offer_id", "id"),
        ),
        past_time_columns=("ts",),
    ),
    "exposures": TableSpec(
        "exposures",
        (
            ColumnSpec("customer_id", "id", required=True),
            ColumnSpec("campaign_id", "id", required=True),
            ColumnSpec("offer_id", "id", required=True),
            ColumnSpec("assigned_at", "timestamp", required=True),
            ColumnSpec("channel", "enum", rule="enum", allowed=CHANNELS),
            ColumnSpec("propensity", "float", rule="propensity"),
        ),
        key=("customer_id", "campaign_id"),
        past_time_columns=("assigned_at",),
        hints={
            "duplicate": "a customer is assigned once per campaign; keep the first assignment "
            "or give the re-run a new campaign_id",
        },
    ),
    "subscriptions": TableSpec(
        "subscriptions",
        (
            ColumnSpec("customer_id", "id", required=True),
            ColumnSpec("plan", "string"),
            ColumnSpec("started_at", "timestamp"),
            ColumnSpec("renews_at", "timestamp"),
            ColumnSpec("status", "enum", rule="enum", allowed=SUBSCRIPTION_STATUSES),
            ColumnSpec("usage", "float", rule="non_negative"),
            ColumnSpec("usage_limit", "float", rule="non_negative"),
        ),
        past_time_columns=("started_at",),
    ),
}

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {name: spec.required for name, spec in SCHEMAS.items()}


@cache
def iana_time_zones() -> frozenset[str]:
    """IANA time zone names known to this Python (plus UTC)."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


@dataclass(frozen=True)
class Rule:
    """A value rule: the rows it flags (as a boolean mask) and how to explain and fix them."""

    issue: Callable[[ColumnSpec], str]
    hint: Callable[[ColumnSpec], str]
    bad: Callable[[pd.Series, ColumnSpec], pd.Series]
    sql: str  # the same rule in DuckDB SQL over {c} (coerced) and {r} (raw value)
    flags_nulls: bool = False  # the rule already reports nulls, so skip the separate null check


def _enum_bad(values: pd.Series, column: ColumnSpec) -> pd.Series:
    return values.notna() & ~values.isin(list(column.allowed))


RULES: dict[str, Rule] = {
    "amount": Rule(
        issue=lambda c: "negative or NaN",
        hint=lambda c: "amounts are order values >= 0; drop refunds or map them to a separate table",
        bad=lambda s, c: s.isna() | (s < 0),
        sql="{r} IS NULL OR isnan({c}) OR {c} < 0",
        flags_nulls=True,
    ),
    "non_negative": Rule(
        issue=lambda c: "negative",
        hint=lambda c: f"{c.name} must be >= 0 (leave it empty when unknown)",
        bad=lambda s, c: s < 0,
        sql="NOT isnan({c}) AND {c} < 0",
    ),
    "at_least_one": Rule(
        issue=lambda c: "below 1",
        hint=lambda c: f"{c.name} counts items and must be >= 1; drop returns (negative "
        "quantities) or map them to a separate table",
        bad=lambda s, c: s < 1,
        sql="{c} < 1",
    ),
    "propensity": Rule(
        issue=lambda c: "outside (0, 1]",
        hint=lambda c: "propensity is the probability of the assignment (e.g. 1/3 for three "
        "equal arms); leave it empty when unknown",
        bad=lambda s, c: s.notna() & ((s <= 0) | (s > 1)),
        sql="NOT isnan({c}) AND ({c} <= 0 OR {c} > 1)",
    ),
    "enum": Rule(
        issue=lambda c: "not one of " + ", ".join(c.allowed),
        hint=lambda c: f"map your {c.name} values onto these (compared lower-case, trimmed)",
        bad=_enum_bad,
        sql="{c} NOT IN ({allowed})",
    ),
    "timezone": Rule(
        issue=lambda c: "not an IANA time zone name",
        hint=lambda c: "use IANA names such as Europe/London or America/New_York",
        bad=lambda s, c: s.notna() & ~s.isin(sorted(iana_time_zones())),
        sql="{c} NOT IN ({time_zones})",
    ),
}

COERCION_ISSUES = {
    "timestamp": (
        "not parseable as a timestamp",
        "write timestamps as ISO 8601 text (2011-09-10 14:30:00, read as UTC unless it carries an "
        "offset like +01:00) or as a timestamp column; convert epoch numbers first, e.g. "
        "pd.to_datetime(x, unit='s')",
    ),
    "float": ("not a number", "write plain numbers with a dot as decimal separator, no currency"),
    "int": ("not a whole number", "write whole numbers (no decimals, no text)"),
    "bool": (
        "not a boolean",
        "write true/false, yes/no or 1/0 (empty when unknown)",
    ),
}

MISSING_COLUMN_HINT = (
    "rename your columns to the contract names (docs/CONTRACT.md); for a transactions-only order "
    "export pass TransactionColumns(customer=..., ts=..., amount=...) to open_dataset"
)

Examples = tuple[tuple[int, Any], ...]


# Problem constructors: the pandas (pandera) and the DuckDB (SQL) validators word alike.


def missing_columns_problem(table: str, missing: Iterable[str], found: Iterable[str]) -> Problem:
    missing = list(missing)
    found_text = ", ".join(map(str, found)) or "none"
    plural = "s" if len(missing) > 1 else ""
    return Problem(
        table,
        None,
        f"missing required column{plural} {', '.join(missing)} (columns found: {found_text})",
        hint=MISSING_COLUMN_HINT,
    )


def empty_table_problem(table: str) -> Problem:
    if table == "transactions":
        hint = "transactions is required and needs at least one row; check the export or filter"
    else:
        hint = f"leave {table} out (only transactions is required) or check the export"
    return Problem(table, None, "the table is empty (0 rows)", hint=hint)


def coercion_problem(table: str, column: ColumnSpec, rows: int, examples: Examples) -> Problem:
    issue, hint = COERCION_ISSUES[column.kind]
    return Problem(table, column.name, issue, rows, examples, hint)


def null_problem(table: str, column: str, rows: int, examples: Examples) -> Problem:
    if column == "customer_id":
        hint = "every row needs a customer_id; drop guest rows or give them an id"
    else:
        hint = f"{column} is required in {table}; fill it in or drop those rows"
    return Problem(table, column, "null (missing)", rows, examples, hint)


def rule_problem(table: str, column: ColumnSpec, rows: int, examples: Examples) -> Problem:
    rule = RULES[column.rule or ""]
    return Problem(table, column.name, rule.issue(column), rows, examples, rule.hint(column))


def unknown_customer_problem(table: str, rows: int, examples: Examples) -> Problem:
    return Problem(
        table,
        "customer_id",
        "for a customer_id not in customers",
        rows,
        examples,
        f"add these customers to customers, drop their rows from {table}, or leave customers "
        "out (it is optional)",
    )


def duplicate_key_problem(table: str, rows: int, examples: Examples) -> Problem:
    spec = SCHEMAS[table]
    return Problem(
        table,
        ", ".join(spec.key),
        f"duplicated on the key ({', '.join(spec.key)})",
        rows,
        examples,
        spec.hints.get("duplicate", "keys must be unique"),
    )


def at_or_after_problem(
    table: str, column: str, cutoff: pd.Timestamp, rows: int, examples: Examples
) -> Problem:
    return Problem(
        table,
        column,
        f"at or after the as-of time {cutoff}",
        rows,
        examples,
        "a snapshot as of T may only see data before T; cut the data at T or choose a later as-of",
    )


def missing_transactions_problem(present: Iterable[str], where: str = "") -> Problem:
    present_text = ", ".join(present) or "none"
    location = f" in {where}" if where else ""
    return Problem(
        "transactions",
        None,
        f"the required table is missing{location} (tables found: {present_text})",
        hint="provide transactions (customer_id, ts, amount), e.g. transactions.parquet or "
        "transactions.csv; every other table is optional",
    )


# ----------------------------------------------------------------------------------------------
# Coercion
# ----------------------------------------------------------------------------------------------


def _id_text(value: Any) -> Any:
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return pd.NA
        return str(int(value)) if np.isfinite(value) and float(value).is_integer() else str(value)
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    return str(value)


def coerce_id(values: pd.Series) -> pd.Series:
    """Ids as strings; integral floats lose their `.0` (12346.0 -> "12346"), nulls stay null."""
    if pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values):
        return values.astype("str")
    if pd.api.types.is_bool_dtype(values):
        return values.astype("str")
    if pd.api.types.is_integer_dtype(values):
        return values.astype("Int64").astype("str")
    if pd.api.types.is_float_dtype(values):
        numbers = values.astype("float64")
        integral = np.isfinite(numbers) & (numbers == np.floor(numbers))
        out = numbers.astype("str")
        out[integral] = numbers[integral].astype("int64").astype("str")
        out[numbers.isna()] = pd.NA
        return out
    return values.map(_id_text, na_action="ignore").astype("str")


def coerce_timestamp(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Timestamps as tz-naive UTC `datetime64[us]`; returns (values, mask of unparseable rows)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        out = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(values):
        out = values
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    else:
        out = pd.to_datetime(values, errors="coerce", utc=True)
        retry = out.isna() & values.notna()
        if retry.any():  # the format pandas inferred from the first row does not fit them all
            out[retry] = pd.to_datetime(values[retry], errors="coerce", utc=True, format="mixed")
        out = out.dt.tz_localize(None)
    out = out.astype("datetime64[us]")
    return out, out.isna() & values.notna()


def coerce_float(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers as float64; returns (values, mask of rows that are not numbers)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        out = values.astype("float64")
        return out, pd.Series(False, index=values.index)
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    return out, out.isna() & values.notna()


def coerce_int(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Whole numbers as int64 (Int64 when some are null); returns (values, mask of bad rows)."""
    numbers, failed = coerce_float(values)
    fractional = numbers.notna() & ~(np.isfinite(numbers) & (numbers == np.floor(numbers)))
    failed = failed | fractional
    numbers = numbers.mask(fractional)
    out = numbers.astype("Int64")
    if not out.isna().any():
        out = out.astype("int64")
    return out, failed


_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def coerce_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Flags as bool (nullable `boolean` when some are null); returns (values, mask of bad rows)."""
    if pd.api.types.is_bool_dtype(values):
        out = values.astype("boolean")
    else:
        text = coerce_id(values).str.strip().str.lower()
        out = pd.Series(pd.NA, index=values.index, dtype="boolean")
        out[text.isin(sorted(_TRUE))] = True
        out[text.isin(sorted(_FALSE))] = False
    failed = out.isna() & values.notna()
    if not out.isna().any():
        out = out.astype("bool")
    return out, failed


def _coerce_column(values: pd.Series, column: ColumnSpec) -> tuple[pd.Series, pd.Series | None]:
    if column.kind in ("id", "string"):
        return coerce_id(values), None
    if column.kind == "enum":
        return coerce_id(values).str.strip().str.lower(), None
    if column.kind == "timestamp":
        return coerce_timestamp(values)
    if column.kind == "float":
        return coerce_float(values)
    if column.kind == "int":
        return coerce_int(values)
    if column.kind == "bool":
        return coerce_bool(values)
    raise ValueError(f"unknown column kind {column.kind!r} for {column.name}; expected {KINDS}")


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------


def _examples(values: pd.Series, bad_rows: np.ndarray) -> tuple[tuple[int, Any], ...]:
    rows = bad_rows[:MAX_EXAMPLES]
    return tuple((int(row), values.iloc[row]) for row in rows)


def _key_examples(frame: pd.DataFrame, key: tuple[str, ...], rows: np.ndarray) -> tuple:
    shown = rows[:MAX_EXAMPLES]
    if len(key) == 1:
        return tuple((int(row), frame[key[0]].iloc[row]) for row in shown)
    return tuple((int(row), tuple(frame[k].iloc[row] for k in key)) for row in shown)


@dataclass
class _CheckSpec:
    """A named pandera check, the column it flags and how its failures become a Problem."""

    name: str
    column: str
    check: pa.Check
    problem: Callable[[int, Examples], Problem]
    excluded: pd.Series | None = None  # rows already reported by coercion


def _passes(rule: Rule, column: ColumnSpec) -> Callable[[pd.Series], pd.Series]:
    """pandera's check function: True where the rule holds (nullable results count as held)."""

    def passes(values: pd.Series) -> pd.Series:
        bad = rule.bad(values, column)
        return ~bad.astype("boolean").fillna(False).astype(bool)

    return passes


def _pandera_checks(
    spec: TableSpec,
    frame: pd.DataFrame,
    coercion_failures: Mapping[str, pd.Series],
    customer_ids: pd.Series | None,
) -> list[_CheckSpec]:
    table = spec.name
    checks: list[_CheckSpec] = []
    for column in spec.columns:
        if column.name not in frame.columns:
            continue
        excluded = coercion_failures.get(column.name)
        if column.required and not (column.rule and RULES[column.rule].flags_nulls):
            name = f"null:{column.name}"
            checks.append(
                _CheckSpec(
                    name,
                    column.name,
                    pa.Check(lambda values: values.notna(), name=name, ignore_na=False),
                    partial(null_problem, table, column.name),
                    excluded,
                )
            )
        if column.rule:
            name = f"{column.rule}:{column.name}"
            checks.append(
                _CheckSpec(
                    name,
                    column.name,
                    pa.Check(_passes(RULES[column.rule], column), name=name, ignore_na=False),
                    partial(rule_problem, table, column),
                    excluded,
                )
            )
    if customer_ids is not None and spec.references_customers and "customer_id" in frame.columns:
        known = customer_ids.dropna().unique()
        name = "unknown_customer:customer_id"
        checks.append(
            _CheckSpec(
                name,
                "customer_id",
                pa.Check(
                    lambda values: values.isna() | values.isin(known), name=name, ignore_na=False
                ),
                partial(unknown_customer_problem, table),
            )
        )
    return checks


def _run_pandera(
    spec: TableSpec, frame: pd.DataFrame, checks: list[_CheckSpec]
) -> list[Problem]:
    """Run the checks lazily with pandera and turn its failure cases into Problems."""
    schema = pa.DataFrameSchema(
        {
            column: pa.Column(checks=[c.check for c in checks if c.column == column], nullable=True)
            for column in dict.fromkeys(c.column for c in checks)
        },
        strict=False,
        name=spec.name,
    )
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as error:
        failed_rows = {
            str(check): np.unique(group["index"].dropna().astype("int64").to_numpy())
            for check, group in error.failure_cases.groupby("check", sort=False)
        }
    else:
        return []
    problems = []
    for check in checks:  # in schema order, so messages come out column by column
        rows = failed_rows.pop(check.name, None)
        if rows is None:
            continue
        if check.excluded is not None:
            rows = rows[~check.excluded.to_numpy()[rows]]
        if len(rows):
            problems.append(check.problem(len(rows), _examples(frame[check.column], rows)))
    for unexpected in failed_rows:  # pandera-internal failures we did not define: report raw
        problems.append(Problem(spec.name, None, f"pandera check {unexpected} failed"))
    return problems


def _duplicate_rows(frame: pd.DataFrame, key: tuple[str, ...]) -> np.ndarray:
    keyed = frame[list(key)]
    complete = keyed.notna().all(axis=1)
    duplicated = keyed.duplicated(keep=False) & complete
    return np.flatnonzero(duplicated.to_numpy())


def _table_problems(
    name: str, frame: pd.DataFrame, customer_ids: pd.Series | None = None
) -> tuple[pd.DataFrame, list[Problem]]:
    """Coerce one table and list its problems (without raising)."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown table {name!r}; the contract's tables are {', '.join(TABLES)}")
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"table {name!r} must be a pandas DataFrame, got {type(frame).__name__}")
    spec = SCHEMAS[name]
    problems: list[Problem] = []
    frame = frame.reset_index(drop=True)
    missing = [column for column in spec.required if column not in frame.columns]
    if missing:
        problems.append(missing_columns_problem(name, missing, frame.columns))
    if len(frame) == 0:
        problems.append(empty_table_problem(name))
        return frame, problems

    coerced = {}
    failures: dict[str, pd.Series] = {}
    for column in spec.columns:
        if column.name not in frame.columns:
            continue
        original = frame[column.name]
        values, failed = _coerce_column(original, column)
        coerced[column.name] = values
        if failed is not None and failed.any():
            failures[column.name] = failed
            rows = np.flatnonzero(failed.to_numpy())
            problems.append(coercion_problem(name, column, len(rows), _examples(original, rows)))
    frame = frame.assign(**coerced)

    problems += _run_pandera(spec, frame, _pandera_checks(spec, frame, failures, customer_ids))

    if spec.key and all(column in frame.columns for column in spec.key):
        rows = _duplicate_rows(frame, spec.key)
        if len(rows):
            problems.append(
                duplicate_key_problem(name, len(rows), _key_examples(frame, spec.key, rows))
            )
    return frame, problems


def validate_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce `frame` to contract table `name` and return it; raise DataContractError if bad.

    Extra columns pass through untouched; the index is reset (row numbers are positions).
    """
    coerced, problems = _table_problems(name, frame)
    if problems:
        raise DataContractError(problems)
    return coerced


def _as_of_problems(frames: Mapping[str, pd.DataFrame], as_of: datetime) -> list[Problem]:
    cutoff = pd.Timestamp(as_of)
    if cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert("UTC").tz_localize(None)
    problems = []
    for name, frame in frames.items():
        if name not in SCHEMAS:
            continue
        for column in SCHEMAS[name].past_time_columns:
            if column not in frame.columns:
                continue
            values = frame[column]
            if not pd.api.types.is_datetime64_dtype(values):
                values, _ = coerce_timestamp(values)
            rows = np.flatnonzero((values >= cutoff).fillna(False).to_numpy())
            if len(rows):
                examples = _examples(values.reset_index(drop=True), rows)
                problems.append(at_or_after_problem(name, column, cutoff, len(rows), examples))
    return problems


def check_before(frames: Mapping[str, pd.DataFrame], as_of: datetime) -> None:
    """Raise DataContractError if any past-event timestamp is at or after `as_of`.

    Checked columns: each table's `past_time_columns` (ts, assigned_at, signup_at, ...);
    future-dated columns such as subscriptions.renews_at are not checked.
    """
    problems = _as_of_problems(frames, as_of)
    if problems:
        raise DataContractError(problems)


def validate_tables(
    frames: Mapping[str, pd.DataFrame], as_of: datetime | None = None
) -> dict[str, pd.DataFrame]:
    """Validate and coerce several tables together, with cross-table checks; raise once.

    Checks every table, that transactions is present, and that customer_ids in other tables
    exist in customers (when customers is given). With `as_of`, also `check_before`.
    """
    problems: list[Problem] = []
    unknown = [name for name in frames if name not in SCHEMAS]
    if unknown:
        raise ValueError(
            f"unknown table(s) {', '.join(map(repr, unknown))}; the contract's tables are "
            f"{', '.join(TABLES)}"
        )
    if "transactions" not in frames:
        problems.append(missing_transactions_problem(frames))
    out: dict[str, pd.DataFrame] = {}
    customer_ids = None
    if "customers" in frames:
        out["customers"], found = _table_problems("customers", frames["customers"])
        problems += found
        if "customer_id" in out["customers"].columns:
            customer_ids = out["customers"]["customer_id"]
    for name in TABLES:
        if name in frames and name != "customers":
            out[name], found = _table_problems(name, frames[name], customer_ids)
            problems += found
    if as_of is not None:
        problems += _as_of_problems(out, as_of)
    if problems:
        raise DataContractError(problems)
    logger.info(
        "validated %s", ", ".join(f"{name} ({len(frame)} rows)" for name, frame in out.items())
    )
    return out
