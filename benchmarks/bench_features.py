"""Feature pipeline benchmark (issue 3): snapshot time and peak memory as the world grows.

For each size (default 100k, 300k and 1M customers, 12 months) it simulates a world into
benchmarks/out/ if it is not there yet, then, each in a fresh process so peak memory is its own:

1. our full snapshot (every family, `build_snapshot(..., feature_set="all")`);
2. our RFM + engagement subset (`feature_set="rfm_engagement"`);
3. the straightforward pandas version of that subset (benchmarks/pandas_baseline.py);

checks that 2 and 3 agree value by value, and prints a Markdown table. Each measurement is
run `--repeat` times (default 2) and the best time is kept (the machine is shared, so the
slower runs measure the neighbours); every run's time is kept in benchmarks/out/bench_features.json.
Times are in-process (opening the data to holding the pandas frame; interpreter start-up and
imports excluded); peak memory is the process's peak resident set.

Targets at 1M customers (>= 30M transaction + event rows): full snapshot <= 120 s and <= 8 GiB
peak, pandas / ours >= 5x on the subset. Exit code 1 when a target or the agreement check fails.

    python benchmarks/bench_features.py [--sizes 100000,300000,1000000] [--months 12] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
TARGET_SECONDS = 120.0
TARGET_PEAK_GIB = 8.0
TARGET_RATIO = 5.0
TARGET_ROWS = 30_000_000

logger = logging.getLogger("bench_features")


def _peak_gib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ----------------------------------------------------------------------------------------------
# Workers (run in child processes)
# ----------------------------------------------------------------------------------------------


def run_simulate(world: Path, customers: int, months: int, seed: int) -> dict:
    from features.simulate import simulate_world, write_world

    started = time.perf_counter()
    write_world(simulate_world(customers, months=months, seed=seed), world)
    return {"seconds": time.perf_counter() - started, "peak_gib": _peak_gib()}


def run_ours(world: Path, as_of: str, feature_set: str, save: Path | None) -> dict:
    from features.io import open_dataset
    from features.snapshot import build_snapshot

    started = time.perf_counter()
    dataset = open_dataset(world, validate=False)
    snapshot = build_snapshot(dataset, as_of, feature_set=feature_set)
    seconds = time.perf_counter() - started
    peak = _peak_gib()
    if save is not None:
        snapshot.drop(columns="as_of").to_parquet(save, index=False)
    return {"seconds": seconds, "peak_gib": peak, "rows": len(snapshot), "columns": snapshot.shape[1] - 2}


def run_pandas(world: Path, as_of: str, save: Path | None) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pandas_baseline

    started = time.perf_counter()
    result = pandas_baseline.rfm_engagement(pandas_baseline.read_world(world), pd.Timestamp(as_of))
    seconds = time.perf_counter() - started
    peak = _peak_gib()
    if save is not None:
        result.to_parquet(save, index=False)
    return {"seconds": seconds, "peak_gib": peak, "rows": len(result), "columns": result.shape[1] - 1}


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def _child(*arguments: str) -> dict:
    """Run this script as a worker in a fresh process and return its JSON answer."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *arguments]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {arguments[0]} failed:\n{done.stderr[-4000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    answer["process_seconds"] = time.perf_counter() - started
    return answer


def _measure(repeat: int, *arguments: str) -> dict:
    """Best (lowest) time of `repeat` fresh-process runs; the highest peak memory; every run."""
    runs = [_child(*arguments) for _ in range(repeat)]
    best = min(runs, key=lambda run: run["seconds"])
    return {
        **best,
        "peak_gib": max(run["peak_gib"] for run in runs),
        "runs_seconds": [round(run["seconds"], 2) for run in runs],
    }


def ensure_world(customers: int, months: int, seed: int) -> tuple[Path, float | None]:
    """The cached world for this size (simulated now if missing) and the simulation time."""
    world = OUT / f"world_{customers}_{months}m_seed{seed}"
    if (world / "world.json").is_file():
        return world, None
    logger.info("simulating %d customers over %d months into %s", customers, months, world)
    answer = _child(
        "simulate", "--world", str(world), "--customers", str(customers), "--months", str(months), "--seed", str(seed)
    )
    return world, answer["seconds"]


def world_rows(world: Path) -> dict[str, int]:
    return {
        name: pq.ParquetFile(world / f"{name}.parquet").metadata.num_rows
        for name in ("customers", "transactions", "events")
    }


def compare(ours_path: Path, theirs_path: Path) -> dict:
    """Cell-by-cell agreement of the two subset outputs (floats to 1e-9 relative)."""
    ours, theirs = pd.read_parquet(ours_path), pd.read_parquet(theirs_path)
    problems = []
    if list(ours["customer_id"]) != list(theirs["customer_id"]):
        problems.append("different customers")
    if set(ours.columns) != set(theirs.columns):
        problems.append(f"different columns: {sorted(set(ours.columns) ^ set(theirs.columns))}")
    mismatched_cells = 0
    for column in [name for name in ours.columns if name in theirs.columns][1:]:
        left, right = ours[column], theirs[column]
        if left.dtype.kind in "fiub":
            same = np.isclose(left.to_numpy(float), right.to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True)
        else:
            same = left.fillna("<null>").astype(str).to_numpy() == right.fillna("<null>").astype(str).to_numpy()
        if not same.all():
            mismatched_cells += int((~same).sum())
            problems.append(f"{column}: {int((~same).sum())} values differ")
    return {
        "agree": not problems,
        "cells": int(ours.size),
        "mismatched_cells": mismatched_cells,
        "problems": problems[:10],
    }


def bench_size(customers: int, months: int, seed: int, with_pandas: bool, repeat: int) -> dict:
    world, simulated = ensure_world(customers, months, seed)
    meta = json.loads((world / "world.json").read_text())
    as_of = meta["end"]
    rows = world_rows(world)
    logger.info("%d customers: %s; as of %s", customers, rows, as_of)
    result = {
        "customers": customers,
        "world": str(world.relative_to(ROOT)),
        "as_of": as_of,
        "rows": rows,
        "simulate_seconds": simulated,
    }
    result["full"] = _measure(repeat, "ours", "--world", str(world), "--as-of", as_of, "--feature-set", "all")
    logger.info("full snapshot: %.1f s, %.2f GiB", result["full"]["seconds"], result["full"]["peak_gib"])
    if with_pandas:
        ours_out, theirs_out = OUT / f"subset_ours_{customers}.parquet", OUT / f"subset_pandas_{customers}.parquet"
        result["subset"] = _measure(
            repeat,
            *("ours", "--world", str(world), "--as-of", as_of, "--feature-set", "rfm_engagement"),
            *("--save", str(ours_out)),
        )
        result["pandas"] = _measure(
            repeat, "pandas", "--world", str(world), "--as-of", as_of, "--save", str(theirs_out)
        )
        result["ratio"] = result["pandas"]["seconds"] / result["subset"]["seconds"]
        result["agreement"] = compare(ours_out, theirs_out)
        logger.info(
            "subset %.1f s, pandas %.1f s, ratio %.1fx, agree %s",
            result["subset"]["seconds"],
            result["pandas"]["seconds"],
            result["ratio"],
            result["agreement"]["agree"],
        )
    return result


def markdown(results: list[dict]) -> str:
    lines = [
        "| customers | transaction + event rows | full snapshot (all families) | peak memory "
        "| RFM+engagement: ours | pandas | pandas / ours | outputs agree |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for result in results:
        rows = result["rows"]["transactions"] + result["rows"]["events"]
        full = result["full"]
        cells = [
            f"{result['customers']:,}",
            f"{rows:,}",
            f"{full['seconds']:.1f} s ({full['columns']} features)",
            f"{full['peak_gib']:.2f} GiB",
        ]
        if "pandas" in result:
            cells += [
                f"{result['subset']['seconds']:.1f} s",
                f"{result['pandas']['seconds']:.1f} s",
                f"{result['ratio']:.1f}x",
                "yes" if result["agreement"]["agree"] else "NO",
            ]
        else:
            cells += ["-", "-", "-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def check_targets(results: list[dict]) -> list[str]:
    """Which of the issue's targets the largest world misses (empty list: all met)."""
    failures = []
    largest = max(results, key=lambda result: result["customers"])
    rows = largest["rows"]["transactions"] + largest["rows"]["events"]
    if largest["customers"] < 1_000_000 or rows < TARGET_ROWS:
        failures.append(
            f"largest world has {largest['customers']:,} customers and {rows:,} rows "
            f"(targets are set at 1,000,000 customers and {TARGET_ROWS:,} rows)"
        )
    if largest["full"]["seconds"] > TARGET_SECONDS:
        failures.append(f"full snapshot took {largest['full']['seconds']:.1f} s > {TARGET_SECONDS} s")
    if largest["full"]["peak_gib"] > TARGET_PEAK_GIB:
        failures.append(f"peak memory {largest['full']['peak_gib']:.2f} GiB > {TARGET_PEAK_GIB} GiB")
    for result in results:
        if "ratio" in result and result["ratio"] < TARGET_RATIO and result is largest:
            failures.append(f"pandas / ours = {result['ratio']:.1f}x < {TARGET_RATIO}x")
        if "agreement" in result and not result["agreement"]["agree"]:
            failures.append(f"outputs disagree at {result['customers']:,}: {result['agreement']['problems']}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated customer counts")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas comparison")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best time is kept")
    parser.add_argument("--worker", choices=["simulate", "ours", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--world", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--feature-set", default="all", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker == "simulate":
        print(json.dumps(run_simulate(args.world, args.customers, args.months, args.seed)))
        return 0
    if args.worker == "ours":
        print(json.dumps(run_ours(args.world, args.as_of, args.feature_set, args.save)))
        return 0
    if args.worker == "pandas":
        print(json.dumps(run_pandas(args.world, args.as_of, args.save)))
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    OUT.mkdir(parents=True, exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = [bench_size(size, args.months, args.seed, not args.no_pandas, args.repeat) for size in sizes]
    table = markdown(results)
    (OUT / "bench_features.json").write_text(json.dumps(results, indent=2))
    (OUT / "bench_features.md").write_text(table)
    print(table)
    failures = check_targets(results)
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    if not failures:
        print("all targets met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
