"""The same feature definitions on Spark: a session, an Ibis connection and a Dataset over Parquet.

`open_spark_dataset(folder)` reads the folder layout `features.io` reads (`<table>.parquet`,
a file or a Spark-written folder of parts), casts every contract column to its contract type
in Spark, and returns a `Dataset` whose tables are Ibis expressions on Spark, so
`features.snapshot.build_snapshot` and the families run unchanged. Spark is an optional extra
(`pip install .[spark]`) and needs Java 17; `spark_problem()` says why it cannot start.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from features.contract import SCHEMAS, TABLES, DataContractError, Problem
from features.dataset import Dataset
from features.io import PARQUET_SUFFIXES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MASTER",
    "ENGINES",
    "SMALL_DATA_CONFIG",
    "open_engine_dataset",
    "open_spark_dataset",
    "spark_connection",
    "spark_dataframe",
    "spark_problem",
    "spark_session",
]

DEFAULT_MASTER = "local[2]"
#: Contract column kind -> Spark SQL type.
SPARK_TYPES = {
    "id": "string",
    "string": "string",
    "enum": "string",
    "timestamp": "timestamp_ntz",
    "float": "double",
    "int": "bigint",
    "bool": "boolean",
}
#: Settings for tiny data (tests, demos): interpreted expressions instead of compiled code and
#: no adaptive re-planning. Measured on 2,000 customers, 2 busy cores: the snapshot takes 20 s
#: in 19 Spark jobs with these, 65 s in 59 jobs without; on large data the defaults win.
SMALL_DATA_CONFIG = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}
INSTALL_HINT = "install the extra with `pip install .[spark]` (PySpark 4.0 and Ibis's pyspark backend)"


def spark_problem() -> str | None:
    """Why a local Spark session cannot start here (no PySpark, no Java), or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return f"PySpark is not installed; {INSTALL_HINT}"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and (Path(java_home) / "bin" / "java").exists()) and shutil.which("java") is None:
        return "no Java runtime found (Spark 4 needs Java 17 or 21): install one or set JAVA_HOME"
    return None


def spark_session(
    master: str = DEFAULT_MASTER,
    *,
    shuffle_partitions: int = 8,
    driver_memory: str = "4g",
    app_name: str = "nbo",
    config: Mapping[str, str] | None = None,
) -> SparkSession:
    """A Spark session in UTC with Arrow transfers; the running one when it already exists.

    `shuffle_partitions` defaults to 8, sized for a few cores and up to millions of customers
    (Spark's default of 200 mostly schedules empty tasks on small data); on a cluster pass
    about 2-3 per core. `config` adds or overrides any Spark setting.
    """
    problem = spark_problem()
    if problem is not None:
        raise RuntimeError(f"cannot start Spark: {problem}")
    if shuffle_partitions < 1:
        raise ValueError(f"shuffle_partitions must be at least 1, got {shuffle_partitions}")
    from pyspark.sql import SparkSession

    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.memory": driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
        "spark.pyspark.python": sys.executable,  # UDF workers import this environment's packages
        "spark.pyspark.driver.python": sys.executable,
        **dict(config or {}),
    }
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local workers: read by PySpark, not the config
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in settings.items():  # a running session keeps its static settings
        if key.startswith("spark.sql.") and session.conf.isModifiable(key):
            session.conf.set(key, value)
    session.sparkContext.setLogLevel("ERROR")
    logger.info("Spark %s session on %s", session.version, session.sparkContext.master)
    return session


def spark_connection(session: SparkSession | None = None) -> ibis.BaseBackend:
    """An Ibis connection on `session` (default: `spark_session()`)."""
    return ibis.pyspark.connect(session if session is not None else spark_session())


def _table_path(folder: Path, table: str) -> Path | None:
    """`<table>.parquet` (or .pq) in `folder`, as a file or a folder of parts; None when absent."""
    present = [folder / f"{table}{suffix}" for suffix in PARQUET_SUFFIXES if (folder / f"{table}{suffix}").exists()]
    if len(present) > 1:
        raise ValueError(f"table {table} is given twice in {folder}: {', '.join(p.name for p in present)}; keep one")
    others = sorted(p.name for p in folder.glob(f"{table}.*") if p.suffix.lower() not in PARQUET_SUFFIXES)
    if not present and others:
        raise ValueError(
            f"{folder}: the Spark engine reads Parquet only, found {', '.join(others)}; convert it "
            f"(e.g. `nbo data import`) or use --engine duckdb"
        )
    return present[0] if present else None


def _contract_select(frame: DataFrame, table: str, where: Path) -> DataFrame:
    """The frame with contract columns cast to contract types (extra columns pass through)."""
    from pyspark.sql import functions as F

    spec = SCHEMAS[table]
    missing = [name for name in spec.required if name not in frame.columns]
    if missing:
        raise DataContractError(
            [Problem(table, None, f"{where} lacks required column(s) {', '.join(missing)}",
                     hint=f"the file has {', '.join(frame.columns)}")]
        )  # fmt: skip
    kinds = {column.name: column.kind for column in spec.columns}
    columns = []
    for name in frame.columns:
        kind = kinds.get(name)
        if kind is None:
            columns.append(F.col(name))
            continue
        value = F.col(name).cast(SPARK_TYPES[kind])
        if kind == "enum":  # as features.io does in DuckDB
            value = F.lower(F.trim(value))
        columns.append(value.alias(name))
    return frame.select(*columns)


def open_spark_dataset(
    path: str | Path,
    *,
    con: ibis.BaseBackend | None = None,
    validate: bool = False,
) -> Dataset:
    """Contract tables of the Parquet folder `path` as lazy Ibis tables on Spark.

    With `validate`, the contract's rules first run in DuckDB over the same files (they must
    be local); Spark itself only casts columns to the contract types.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(
            f"{folder} is not a folder: the Spark engine reads a folder of <table>.parquet files "
            "(as `nbo simulate` writes); use --engine duckdb for a single file or a DuckDB file"
        )
    locations = {table: location for table in TABLES if (location := _table_path(folder, table)) is not None}
    if "transactions" not in locations:
        raise DataContractError(
            [Problem("transactions", None, f"no transactions.parquet in {folder}",
                     hint="the Spark engine reads <table>.parquet files; only transactions is required")]
        )  # fmt: skip
    if validate and all(location.is_file() for location in locations.values()):
        from features.io import open_dataset

        open_dataset(folder, validate=True)
    elif validate:
        logger.warning("%s holds Spark part folders: the contract checks (DuckDB, files only) are skipped", folder)
    con = con if con is not None else spark_connection()
    session = spark_dataframe_session(con)
    token = uuid.uuid4().hex[:8]
    tables = {}
    for table, location in locations.items():
        frame = _contract_select(session.read.parquet(str(location)), table, location)
        view = f"nbo_{table}_{token}"
        frame.createOrReplaceTempView(view)
        tables[table] = con.table(view)
    return Dataset(con=con, tables=tables, cache_part=cache_table)


def cache_table(table: ibis.Table) -> ibis.Table:
    """`table.cache()` on Spark (lazy: computed by the first query that reads it, then kept).

    In-memory tables it reads (ibis.memtable) are registered first, which Ibis 12's pyspark
    backend does on execute but not on cache.
    """
    table._find_backend()._run_pre_execute_hooks(table)
    return table.cache()


def spark_dataframe_session(con: Any) -> SparkSession:
    """The SparkSession behind an Ibis pyspark connection (ValueError for another backend)."""
    if getattr(con, "name", None) != "pyspark":
        raise ValueError(f"expected an Ibis pyspark connection (features.spark.spark_connection()), got {con!r}")
    return con._session


def spark_dataframe(expression: ibis.Table) -> DataFrame:
    """A lazy Spark DataFrame of an Ibis expression bound to a pyspark connection."""
    con = expression._find_backend()
    session = spark_dataframe_session(con)
    con._run_pre_execute_hooks(expression)  # registers in-memory tables (ibis.memtable) as views
    return session.sql(con.compile(expression))


ENGINES = ("duckdb", "spark")


def open_engine_dataset(path: str | Path, engine: str = "duckdb", *, validate: bool = True, **options: Any) -> Dataset:
    """`features.io.open_dataset` (engine "duckdb") or `open_spark_dataset` on a local
    `spark_session()` (engine "spark"); `options` go to the DuckDB reader."""
    if engine == "duckdb":
        from features.io import open_dataset

        return open_dataset(path, validate=validate, **options)
    if engine != "spark":
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if any(value is not None for value in options.values()):
        raise ValueError(
            "the transactions-only column flags need --engine duckdb; the Spark engine reads a folder of "
            "contract-named <table>.parquet files"
        )
    return open_spark_dataset(path, validate=validate)
