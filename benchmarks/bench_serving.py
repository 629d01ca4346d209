"""Serving latency and throughput on loopback (issue 7), side by side in one run.

Builds and registers a realistic `nbo` model (benchmarks/serving_setup.py: bench_decide's
models, trained by the project's code on a simulated world), publishes its snapshot, starts the
BentoML service (`bentoml serve serving.service:NboService`, 1 worker) and `mlflow models serve`
of the same registered pyfunc (1 uvicorn worker, --env-manager local), then measures:

* BentoML `/decide` for one customer at concurrency 1 and 8 (closed loop);
* BentoML `/decide` for a batch of 1,000 customers; `/decide` with explanations;
* `mlflow models serve` `/invocations` with the same customer's snapshot row at concurrency 1 and 8;
* the same model called in-process (`pyfunc.predict` of one row, no HTTP);
* a sustained open-loop load of 100 requests/s on BentoML `/decide` (60 s; 10 s with --quick).

The pyfunc is registered with `explain="none"` (what plain /decide asks of it), so both servers
run the same model work; BentoML also looks each customer up in the snapshot and writes every
decision durably to the decision log before answering, which `mlflow models serve` does not
(it gets the customer's full snapshot row in the request). The load generator
(`serving/loadtest.py`, httpx + asyncio) runs in its own process, so it shares no GIL with the
servers or this script; but all of them share this machine's cores. Figures go to a Rich table
and benchmarks/out/serving.json.

    python benchmarks/bench_serving.py [--quick] [--customers 20000] [--json benchmarks/out/serving.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from serving.loadtest import RequestSpec, run_load  # noqa: E402

logger = logging.getLogger("bench_serving")

OUT = ROOT / "benchmarks" / "out"
TARGETS = {
    "decide_c1_p99_ms": 20.0,
    "batch_1000_p50_ms": 150.0,
    "explain_c1_p99_ms": 40.0,
    "c8_throughput_ratio": 2.0,
    "sustained_rate_rps": 100.0,
}


NOTES = (
    "The load generator, BentoML, mlflow serve and this script share the machine's cores (loopback).",
    "Same pyfunc in both servers, registered with explain='none' (what plain /decide asks for).",
    "BentoML also does the snapshot look-up and the durable decision-log write per request; "
    "mlflow serve receives the full snapshot row and writes nothing.",
    "Closed loop for c=1/c=8/batch/explain (next request when the previous answers); open loop for the "
    "sustained load (sent on schedule, at most 32 in flight).",
    "steal / iowait: share of the machine's CPU time during the case (warm-up included) that the hypervisor "
    "gave to other guests / that waited on disk (Linux /proc/stat); '-' where not measured.",
)


@dataclass(frozen=True)
class Cycle:
    """Picklable request factory: request i is `bodies[i % len(bodies)]` sent to `path`."""

    path: str
    bodies: tuple[Any, ...]

    def __call__(self, index: int) -> RequestSpec:
        return RequestSpec(self.path, self.bodies[index % len(self.bodies)])


def _load_case(base_url: str, make: Cycle, warmup: int, options: dict[str, Any]) -> dict[str, Any]:
    """Runs in the load-generator process: warm up (discarded), then the measured load."""
    if warmup:
        run_load(base_url, make, requests=warmup, concurrency=options.get("concurrency", 1), timeout_s=60)
    result = run_load(base_url, make, timeout_s=60, **options)
    summary = result.summary()
    summary["elapsed_s"] = result.elapsed_s
    summary["statuses"] = {str(status): count for status, count in result.statuses.items()}
    summary["first_errors"] = result.errors[:3]
    return summary


def _cpu_times() -> dict[str, int] | None:
    """The machine's cumulative CPU time in ticks (Linux `/proc/stat`: total, steal, iowait), None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return {"total": sum(fields), "iowait": fields[4], "steal": fields[7] if len(fields) > 7 else 0}


def _host_shares(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, float] | None:
    """Share of all CPU time during a case that the hypervisor took (steal) or that waited on disk (iowait)."""
    if before is None or after is None or after["total"] <= before["total"]:
        return None
    total = after["total"] - before["total"]
    return {name: (after[name] - before[name]) / total for name in ("steal", "iowait")}


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def mlflow_body(row: pd.DataFrame, now: str) -> dict[str, Any]:
    """The `/invocations` payload (MLflow 3 `dataframe_split` + params) of one customer's snapshot row."""
    values = [_json_value(value) for value in row.iloc[0].tolist()]
    return {"dataframe_split": {"columns": [str(c) for c in row.columns], "data": [values]}, "params": {"now": now}}


def in_process_case(
    model_uri: str, frame: pd.DataFrame, now: str, seconds: float, tracking_uri: str | None = None
) -> dict[str, Any]:
    """`pyfunc.predict` (signature checks included) and the unwrapped model's predict, one row per call."""
    import mlflow.pyfunc

    if tracking_uri is not None:  # the bench registry, not whatever the working directory's default holds
        mlflow.set_tracking_uri(tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    python_model = pyfunc.unwrap_python_model()  # registered with explain="none", like plain /decide
    results = {}
    for name, call in (
        ("in_process_pyfunc", lambda row: pyfunc.predict(row, params={"now": now})),
        ("in_process_nbo_model", lambda row: python_model.predict(None, row, params={"now": now})),
    ):
        for index in range(20):
            call(frame.iloc[[index]])
        latencies: list[float] = []
        started = time.perf_counter()
        index = 0
        while time.perf_counter() - started < seconds:
            row = frame.iloc[[index % len(frame)]]
            begin = time.perf_counter()
            call(row)
            latencies.append((time.perf_counter() - begin) * 1000.0)
            index += 1
        elapsed = time.perf_counter() - started
        array = np.asarray(latencies)
        results[name] = {
            "requests": float(len(array)), "failures": 0.0, "throughput_rps": len(array) / elapsed,
            "p50_ms": float(np.quantile(array, 0.5)), "p95_ms": float(np.quantile(array, 0.95)),
            "p99_ms": float(np.quantile(array, 0.99)), "max_ms": float(array.max()), "elapsed_s": elapsed,
        }  # fmt: skip
    return results


def _check_answers(bento_url: str, decide_body: Any, mlflow_url: str, invocation_body: Any) -> None:
    """RuntimeError unless both servers answer one request with one decision (so the load measures answers)."""
    import httpx

    decided = httpx.post(f"{bento_url}/decide", json=decide_body, timeout=120)
    predicted = httpx.post(f"{mlflow_url}/invocations", json=invocation_body, timeout=120)
    if decided.status_code != 200 or len(decided.json().get("decisions", [])) != 1:
        raise RuntimeError(f"BentoML /decide answered {decided.status_code}: {decided.text[:300]}")
    if predicted.status_code != 200 or len(predicted.json().get("predictions", [])) != 1:
        raise RuntimeError(f"mlflow serve /invocations answered {predicted.status_code}: {predicted.text[:300]}")
    logger.info("one answer each: BentoML offer %s, mlflow serve offer %s",
                decided.json()["decisions"][0]["offer_id"], predicted.json()["predictions"][0]["offer_id"])  # fmt: skip


def _checks(cases: dict[str, dict[str, Any]], sustained_seconds: float) -> list[dict[str, Any]]:
    ratio = cases["bento_decide_c8"]["throughput_rps"] / cases["mlflow_serve_c8"]["throughput_rps"]
    sustained = cases["bento_sustained_100rps"]
    expected = TARGETS["sustained_rate_rps"] * sustained_seconds
    rows = [
        ("/decide 1 customer, c=1: p99", cases["bento_decide_c1"]["p99_ms"], "<= 20 ms",
         cases["bento_decide_c1"]["p99_ms"] <= TARGETS["decide_c1_p99_ms"]),
        ("/decide 1,000 customers: p50", cases["bento_batch_1000"]["p50_ms"], "<= 150 ms",
         cases["bento_batch_1000"]["p50_ms"] <= TARGETS["batch_1000_p50_ms"]),
        ("/decide with explanations, c=1: p99", cases["bento_explain_c1"]["p99_ms"], "<= 40 ms",
         cases["bento_explain_c1"]["p99_ms"] <= TARGETS["explain_c1_p99_ms"]),
        ("c=8 throughput BentoML / mlflow serve", ratio, ">= 2.0", ratio >= TARGETS["c8_throughput_ratio"]),
        (f"{sustained_seconds:.0f} s offered at 100 req/s: errors", sustained["failures"], "0",
         sustained["failures"] == 0 and sustained["requests"] >= 0.99 * expected),
        (f"{sustained_seconds:.0f} s offered at 100 req/s: answered req/s", sustained["throughput_rps"], ">= 95",
         sustained["throughput_rps"] >= 0.95 * TARGETS["sustained_rate_rps"]),
    ]  # fmt: skip
    return [{"target": name, "measured": value, "goal": goal, "met": bool(met)} for name, value, goal, met in rows]


def _print(cases: dict[str, dict[str, Any]], checks: list[dict[str, Any]], header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))
    table = Table(title="Serving on loopback (" + header + ")")
    table.add_column("case", no_wrap=True)
    for column in ("requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "steal", "iowait"):
        table.add_column(column, justify="right")
    for name, case in cases.items():
        host = case.get("host") or {}
        shares = [f"{host[key]:.1%}" if key in host else "-" for key in ("steal", "iowait")]
        table.add_row(
            name, f"{case['requests']:,.0f}", f"{case['failures']:,.0f}", f"{case['throughput_rps']:,.1f}",
            f"{case['p50_ms']:.1f}", f"{case['p95_ms']:.1f}", f"{case['p99_ms']:.1f}", f"{case['max_ms']:.1f}",
            *shares,
        )  # fmt: skip
    console.print(table)
    verdicts = Table(title="Targets")
    for column in ("target", "measured", "goal", "verdict"):
        verdicts.add_column(column, no_wrap=column != "target")
    for check in checks:
        verdicts.add_row(check["target"], f"{check['measured']:.2f}", check["goal"], "PASS" if check["met"] else "MISS")
    console.print(verdicts)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build, start both servers, measure every case, stop the servers (also on error)."""
    from serving_setup import MlflowServeProcess, build_bench_model

    from tests.serving.server import ServiceProcess, free_port

    quick = args.quick
    seconds = 5.0 if quick else 20.0
    sustained_seconds = 10.0 if quick else 60.0
    directory = args.work_dir or Path(tempfile.mkdtemp(prefix="nbo-bench-serving-"))
    directory.mkdir(parents=True, exist_ok=True)
    logger.info("building the model (%d customers) in %s", args.customers, directory)
    bench = build_bench_model(directory, args.customers, args.trials)
    logger.info("model ready in %.0f s: churn trees %d, uplift %s", bench.seconds, bench.churn_trees,
                bench.uplift_learners)  # fmt: skip
    environment = {
        "MLFLOW_TRACKING_URI": bench.tracking_uri,
        "NBO_MODEL_URI": bench.model_uri,
        "NBO_SNAPSHOT": str(bench.snapshot_path),
        "NBO_DECISION_LOG": str(directory / "decisions.sqlite"),
    }
    ids = [str(value) for value in bench.frame["customer_id"]]
    order = np.random.default_rng(0).permutation(len(ids))
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    one = Cycle("/decide", tuple({"customers": [{"customer_id": ids[k]}]} for k in order[:5000]))
    explained = Cycle("/decide", tuple({"customers": [{"customer_id": ids[k]}], "explain": True} for k in order[:5000]))
    batches = tuple(
        {"customers": [{"customer_id": ids[k]} for k in order[start : start + 1000]]}
        for start in range(0, min(len(ids), 20_000) - 999, 1000)
    )
    rows = [bench.frame.iloc[[k]] for k in order[:500]]
    invocations = Cycle("/invocations", tuple(mlflow_body(row, now) for row in rows))

    bento = ServiceProcess(environment, directory / "bentoml.log")
    mlflow_server = MlflowServeProcess(bench.model_uri, environment, directory / "mlflow-serve.log", free_port())
    cases: dict[str, dict[str, Any]] = {}
    context = multiprocessing.get_context("spawn")
    load_before = os.getloadavg()
    try:
        bento.start(timeout=180)
        mlflow_server.start()
        logger.info("servers up: BentoML %s, mlflow serve %s", bento.url, mlflow_server.url)
        _check_answers(bento.url, one.bodies[0], mlflow_server.url, invocations.bodies[0])
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as client:
            plan = [
                ("bento_decide_c1", bento.url, one, 20, {"duration_s": seconds, "concurrency": 1}),
                ("bento_decide_c8", bento.url, one, 40, {"duration_s": seconds, "concurrency": 8}),
                ("bento_batch_1000", bento.url, Cycle("/decide", batches), 3,
                 {"requests": 20 if quick else 60, "concurrency": 1}),
                ("bento_explain_c1", bento.url, explained, 20, {"duration_s": seconds, "concurrency": 1}),
                ("mlflow_serve_c1", mlflow_server.url, invocations, 20, {"duration_s": seconds, "concurrency": 1}),
                ("mlflow_serve_c8", mlflow_server.url, invocations, 40, {"duration_s": seconds, "concurrency": 8}),
                ("bento_sustained_100rps", bento.url, one, 0,
                 {"duration_s": sustained_seconds, "rate": 100.0, "concurrency": 32}),
            ]  # fmt: skip
            for name, url, make, warmup, options in plan:
                logger.info("measuring %s", name)
                before = _cpu_times()
                cases[name] = client.submit(_load_case, url, make, warmup, options).result()
                cases[name]["host"] = _host_shares(before, _cpu_times())
                cases[name]["server"] = "mlflow models serve" if url == mlflow_server.url else "BentoML"
        cases.update(in_process_case(bench.model_uri, bench.frame.iloc[order[:2000]], now, seconds, bench.tracking_uri))
    finally:
        bento.stop()
        mlflow_server.stop()
    load_after = os.getloadavg()
    checks = _checks(cases, sustained_seconds)
    if args.work_dir is None:  # a throw-away registry; kept (with the server logs) only on error
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15_before": load_before,
            "load_average_1_5_15_after": load_after,
            "note": "load generator, BentoML and mlflow serve share these cores (loopback)",
        },
        "model": {
            "customers": args.customers,
            "churn_trees": bench.churn_trees,
            "uplift_learners": bench.uplift_learners,
            "snapshot_columns": int(bench.frame.shape[1]),
            "build_seconds": bench.seconds,
        },
        "servers": {"bentoml": "1 worker, 32 threads", "mlflow_serve": "1 uvicorn worker, --env-manager local"},
        "notes": NOTES,
        "cases": cases,
        "c8_throughput_ratio": cases["bento_decide_c8"]["throughput_rps"] / cases["mlflow_serve_c8"]["throughput_rps"],
        "targets": checks,
        "work_directory": str(directory) if args.work_dir else None,
    }


def _exit_on_signal(number: int, frame: Any) -> None:
    raise SystemExit(128 + number)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (5 s per case, 10 s sustained load)")
    parser.add_argument("--customers", type=int, default=None, help="simulated customers (default 20,000; 5,000 quick)")
    parser.add_argument("--trials", type=int, default=None, help="uplift tuning trials (default 4; 1 quick)")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the model here (reused when present)")
    parser.add_argument("--json", type=Path, default=OUT / "serving.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so the servers are stopped by `finally`
    args.customers = args.customers or (5_000 if args.quick else 20_000)
    args.trials = args.trials or (1 if args.quick else 4)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("features", "training", "models", "mlflow", "httpx", "alembic", "optuna", "lightgbm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    summary = run(args)
    load = summary["machine"]["load_average_1_5_15_before"]
    header = (f"{summary['machine']['cpu_count']} cores shared by the load generator and both servers; "
              f"load average before {load[0]:.1f}")  # fmt: skip
    _print(summary["cases"], summary["targets"], header)
    for note in NOTES:
        print(f"- {note}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, default=str))
    print(f"results in {args.json}")
    return 0 if all(check["met"] for check in summary["targets"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
