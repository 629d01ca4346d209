"""DuckDB against local Spark (issue 9): wall time of the same full snapshot, side by side.

For each size (default 100k and 1M customers, 12 months) it simulates a world into
benchmarks/out/ when it is not there yet (`--quick`: 20k customers in a temporary folder), then,
each in a fresh process: the full snapshot (`build_snapshot(..., feature_set="all")`, every
family, as of the world's end) on DuckDB, and the same definitions on a local Spark session
(`features.spark`, `local[2]`). Times run from opening the data to the snapshot written as Parquet;
Spark's session start-up is timed separately (a cluster pays it once per application). The two
snapshots must agree (rows, and the sum of every numeric column to 1e-9 relative, read back
from the Parquet), else exit 1.
Results go to benchmarks/out/bench_spark.json and print as a Markdown table.

    python benchmarks/bench_spark.py [--sizes 100000,1000000] [--quick] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
QUICK_SIZE = 20_000

logger = logging.getLogger("bench_spark")


def _peak_gib() -> float:
    """This Python process's peak resident memory (Linux reports KiB). Spark's JVM, a running
    child, is not included (getrusage counts only children that have ended)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _checksums(path: Path) -> dict[str, float]:
    """Row count and the sum of every numeric column of a Parquet file or folder of parts."""
    import duckdb

    relation = duckdb.sql(f"SELECT * FROM read_parquet('{path}/*.parquet') " if path.is_dir() else
                          f"SELECT * FROM read_parquet('{path}')")  # fmt: skip
    numeric = [name for name, kind in zip(relation.columns, relation.dtypes, strict=True)
               if str(kind) in ("BIGINT", "INTEGER", "DOUBLE", "FLOAT")]  # fmt: skip
    sums = relation.aggregate(", ".join([f'sum("{name}")::DOUBLE' for name in numeric] + ["count(*)"])).fetchall()[0]
    return {**dict(zip(numeric, sums[:-1], strict=True)), "rows": sums[-1]}


def run_engine(engine: str, world: Path, as_of: str, partitions: int, out: Path) -> dict:
    """One engine's full snapshot, written as Parquet, in this process (a child of the driver).

    DuckDB: `build_snapshot` (the pandas frame) written to one file; Spark: the same Ibis
    expression (`snapshot_table`) written by Spark's executors as a folder of parts, as a
    cluster would, without collecting a million rows on the driver.
    """
    result: dict = {"engine": engine}
    if engine == "spark":
        from features.spark import spark_connection, spark_session

        started = time.perf_counter()
        con = spark_connection(spark_session(shuffle_partitions=partitions, driver_memory="6g"))
        result["session_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    if engine == "spark":
        from features.snapshot import snapshot_table
        from features.spark import open_spark_dataset, spark_dataframe

        dataset = open_spark_dataset(world, con=con, validate=False)
        table, _ = snapshot_table(dataset, as_of, feature_set="all")
        spark_dataframe(table).write.mode("overwrite").parquet(str(out))
    else:
        from features.io import open_dataset
        from features.snapshot import build_snapshot

        snapshot = build_snapshot(open_dataset(world, validate=False), as_of, feature_set="all")
        snapshot.drop(columns="as_of").to_parquet(out, index=False)
    result["seconds"] = time.perf_counter() - started
    result["peak_gib_python"] = _peak_gib()
    return result


def _child(args: list[str]) -> dict:
    command = [sys.executable, __file__, *args]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _world(folder: Path, customers: int, months: int, seed: int) -> Path:
    world = folder / f"world_{customers}_{months}m_seed{seed}"
    if not (world / "world.json").is_file():
        logger.info("simulating %d customers into %s", customers, world)
        from features.simulate import simulate_world, write_world

        write_world(simulate_world(customers, months=months, seed=seed), world)
    return world


def _agree(duck: dict, spark: dict) -> list[str]:
    problems = []
    for name, value in duck["checksums"].items():
        other = spark["checksums"].get(name, "absent")
        if value is None or other is None or other == "absent":  # all-null columns sum to None
            if value != other:
                problems.append(f"sum of {name}: duckdb {value!r} spark {other!r}")
        elif abs(other - value) > 1e-9 * max(abs(value), 1.0):
            problems.append(f"sum of {name}: duckdb {value!r} spark {other!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated customer counts")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine and size; the best time is kept")
    parser.add_argument("--partitions", type=int, default=8, help="Spark shuffle partitions")
    parser.add_argument("--quick", action="store_true", help=f"one world of {QUICK_SIZE:,} customers in a temp folder")
    parser.add_argument("--json", type=Path, default=OUT / "bench_spark.json", help="where the results go")
    parser.add_argument("--worker", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--world", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(run_engine(args.worker, args.world, args.as_of, args.partitions, args.out)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from features.spark import spark_problem

    problem = spark_problem()
    if problem is not None:
        print(f"cannot run the Spark benchmark: {problem}")
        return 1
    temporary = tempfile.TemporaryDirectory(prefix="nbo-bench-spark-") if args.quick else None
    folder = Path(temporary.name) if temporary else OUT
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [QUICK_SIZE] if args.quick else [int(size) for size in args.sizes.split(",")]
    load = os.getloadavg()
    rows, failures = [], []
    for customers in sizes:
        world = _world(folder, customers, args.months, args.seed)
        as_of = json.loads((world / "world.json").read_text())["end"]
        best: dict[str, dict] = {}
        for engine in ("duckdb", "spark"):
            for attempt in range(args.repeat):
                started = time.perf_counter()
                out = folder / f"snapshot_{engine}_{customers}.parquet"
                result = _child(["--worker", engine, "--world", str(world), "--as-of", as_of,
                                 "--partitions", str(args.partitions), "--out", str(out)])  # fmt: skip
                result["checksums"] = _checksums(out)
                shutil.rmtree(out) if out.is_dir() else out.unlink()  # only the sums are kept
                result["process_seconds"] = time.perf_counter() - started
                result["load_before"] = os.getloadavg()[0]
                logger.info("%s %d customers, run %d: %.1f s", engine, customers, attempt + 1, result["seconds"])
                if engine not in best or result["seconds"] < best[engine]["seconds"]:
                    best[engine] = result
        problems = _agree(best["duckdb"], best["spark"])
        failures += [f"{customers}: {problem}" for problem in problems]
        for result in best.values():
            result.pop("checksums")
        rows.append({"customers": customers, "duckdb": best["duckdb"], "spark": best["spark"], "agree": not problems})
    report = {"load_average_at_start": load, "cpus": os.cpu_count(), "months": args.months, "results": rows}
    if not args.quick:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print("| customers | DuckDB snapshot s | Spark local[2] snapshot s | Spark session start s | Spark / DuckDB "
          "| agree |")
    print("|---:|---:|---:|---:|---:|:---:|")
    for row in rows:
        duck, spark = row["duckdb"], row["spark"]
        print(
            f"| {row['customers']:,} | {duck['seconds']:.1f} | {spark['seconds']:.1f} | "
            f"{spark['session_seconds']:.1f} | {spark['seconds'] / duck['seconds']:.1f}x | "
            f"{'yes' if row['agree'] else 'NO'} |"
        )
    for failure in failures:
        print(f"disagreement: {failure}")
    if temporary:
        temporary.cleanup()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
