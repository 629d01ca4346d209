"""Coverage of off-policy intervals: normal (before) against Fay-Feuer gamma (after).

For each scenario seed in a fixed range (2, 3, ..., stated in the output): a simulated shop of
3,000 customers is decided by the logging policy (epsilon 0.4, 5% holdout), outcomes of the
logged decisions are drawn from the simulator's true effects, a challenger is trained on the
log's training customers (`nbo train uplift --exposures --no-refit` settings: trials 2,
learners t and dr) and evaluated on the held-out customers. Its true value (the simulator's
expected conversion of the actions it took) is compared with the IPS and DR intervals, both
computed from the same evaluation (same actions, same cross-fitted outcome model) with the
normal and the gamma interval. A second table repeats this on synthetic logged bandit data with
a known value (tests/models/test_policy_value.py's generator), many replications.

Usage: .venv/bin/python benchmarks/bench_ope_coverage.py --seeds 20 [--first-seed 2] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench_ope_coverage")
METHODS = ("normal", "gamma")


def _fingerprint(frame: pd.DataFrame) -> str:
    """Order-sensitive hash of a frame's values (to compare runs across processes)."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:12]


def source_fingerprint() -> str:
    """Hash of the package sources at start (modules load once), so runs of different code
    are not compared as if they were one."""
    digest = hashlib.sha256()
    for path in sorted(
        path for package in ("features", "models", "training") for path in (ROOT / package).rglob("*.py")
    ):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def run_seed(seed: int, customers: int, directory: Path, source: str) -> dict:
    """One scenario: build, train the challenger, evaluate it with both intervals."""
    from models.policy_value import doubly_robust_policy_value, ips_policy_value
    from tests.training.test_policy_evaluation import build_logged_world, logging_config, true_value_of
    from training.log_exposures import log_exposures
    from training.nbo_model import NboModel
    from training.policy_evaluation import evaluate_policy, evaluation_rows
    from training.train_uplift import UpliftSetup, build_uplift_rows_from_log, fit_uplift_models

    started = time.perf_counter()
    logged = build_logged_world(directory, seed, customers=customers)
    exposures = log_exposures(logged.log_path, logged.dataset, observed_until=logged.observed_until)
    setup = UpliftSetup(trials=2, learners=("t", "dr"), seed=seed, refit=False)
    uplift_rows, _ = build_uplift_rows_from_log(
        logged.log_path, logged.dataset, setup, observed_until=logged.observed_until
    )
    trained = fit_uplift_models(uplift_rows, setup)
    challenger = NboModel(None, trained.models, logged.catalog, logging_config(), explain="none")
    rows, _ = evaluation_rows(
        logged.log_path, logged.dataset, observed_until=logged.observed_until, held_out_customers=True
    )
    evaluation = evaluate_policy(challenger, rows, interval="gamma")
    truth = true_value_of(logged, evaluation)
    y = rows["outcome_convert"].to_numpy(dtype=float)
    taken = rows["logged_action"].to_numpy(dtype=object)
    chosen = evaluation.actions["challenger"].to_numpy(dtype=object)
    propensity = rows["propensity"].to_numpy(dtype=float)
    result = {
        "seed": seed,
        "rows": evaluation.rows,
        "truth": truth,
        "agreement": evaluation.agreement,
        "matched_conversions": int(((taken == chosen) & (y > 0)).sum()),
        "fingerprints": {
            "exposures": _fingerprint(exposures.frame.drop(columns=["decision_id"])),
            "training_rows": _fingerprint(uplift_rows.frame.drop(columns=["decision_id"], errors="ignore")),
            "challenger_actions": _fingerprint(evaluation.actions[["challenger"]]),
        },
    }
    for method in METHODS:
        ips = ips_policy_value(y, taken, chosen, propensity, interval=method)
        dr = doubly_robust_policy_value(y, taken, chosen, propensity, evaluation.predicted_outcomes, interval=method)
        for name, value in (("ips", ips), ("dr", dr)):
            result[f"{name}_{method}"] = {"value": value.value, "low": value.low, "high": value.high}
    result["source"] = source
    result["seconds"] = time.perf_counter() - started
    return result


def synthetic_coverage(replications: int, seed: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(estimator, interval) -> (coverage, median width) on synthetic sparse bandit logs."""
    from models.policy_value import doubly_robust_policy_value, ips_policy_value
    from tests.models.test_policy_value import _sparse_bandit_log

    rng = np.random.default_rng(seed)
    actions, _, rate, probability, target, truth, taken, converted = _sparse_bandit_log(rng, 900, replications)
    model = pd.DataFrame(0.8 * rate + 0.01, columns=actions)
    chosen = actions[target]
    hits: dict[tuple[str, str], list[tuple[bool, float]]] = {}
    for replication in range(replications):
        logged, y = actions[taken[replication]], converted[replication].astype(float)
        propensity = probability[taken[replication]]
        for method in METHODS:
            for name, value in (
                ("ips", ips_policy_value(y, logged, chosen, propensity, interval=method)),
                ("dr", doubly_robust_policy_value(y, logged, chosen, propensity, model, interval=method)),
            ):
                hits.setdefault((name, method), []).append((value.low <= truth <= value.high, value.high - value.low))
    return {
        key: (float(np.mean([hit for hit, _ in pairs])), float(np.median([width for _, width in pairs])))
        for key, pairs in hits.items()
    }


def scenario_table(results: list[dict]) -> str:
    """Markdown: coverage (k/n) and median width per estimator and interval."""
    lines = ["| estimator | interval | coverage | median width |", "|---|---|---|---|"]
    for name in ("ips", "dr"):
        for method in METHODS:
            intervals = [result[f"{name}_{method}"] for result in results]
            covered = sum(
                item["low"] <= result["truth"] <= item["high"] for item, result in zip(intervals, results, strict=True)
            )
            width = float(np.median([item["high"] - item["low"] for item in intervals]))
            label = "before (normal)" if method == "normal" else "after (gamma)"
            lines.append(f"| {name.upper()} | {label} | {covered}/{len(results)} | {width:.4f} |")
    return "\n".join(lines)


def synthetic_table(coverage: dict[tuple[str, str], tuple[float, float]], replications: int) -> str:
    lines = [f"| estimator | interval | coverage ({replications} replications) | median width |", "|---|---|---|---|"]
    for (name, method), (share, width) in coverage.items():
        label = "before (normal)" if method == "normal" else "after (gamma)"
        lines.append(f"| {name.upper()} | {label} | {share:.3f} | {width:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=20, help="Number of scenario seeds (first-seed, first-seed+1, ...)."
    )
    parser.add_argument("--first-seed", type=int, default=2, help="First scenario seed (1 is the test's own seed).")
    parser.add_argument("--customers", type=int, default=3000, help="Simulated customers per scenario.")
    parser.add_argument("--replications", type=int, default=2000, help="Synthetic replications.")
    parser.add_argument("--quick", action="store_true", help="2 seeds of 1,500 customers, 300 replications.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ope_coverage.jsonl")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logger.setLevel(logging.INFO)
    seeds, customers, replications = args.seeds, args.customers, args.replications
    if args.quick:
        seeds, customers, replications = 2, 1500, 300
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp()}/mlflow.db")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    source = source_fingerprint()
    with args.out.open("w") as sink:
        for seed in range(args.first_seed, args.first_seed + seeds):
            with tempfile.TemporaryDirectory(prefix=f"ope-seed{seed}-") as directory:
                result = run_seed(seed, customers, Path(directory), source)
            results.append(result)
            sink.write(json.dumps(result) + "\n")
            sink.flush()
            logger.info(
                "seed %d: truth %.4f, IPS normal [%.4f, %.4f] gamma [%.4f, %.4f], %d matched conversions, %.0f s",
                seed, result["truth"], result["ips_normal"]["low"], result["ips_normal"]["high"],
                result["ips_gamma"]["low"], result["ips_gamma"]["high"], result["matched_conversions"],
                result["seconds"],
            )  # fmt: skip
    last = args.first_seed + seeds - 1
    print(f"\nScenario seeds {args.first_seed}..{last}, {customers} customers, challenger on held-out customers")
    print(f"(sources {source}):\n")
    print(scenario_table(results))
    print("\nSynthetic sparse bandit logs (900 rows, epsilon 0.4, known value), seed 7:\n")
    print(synthetic_table(synthetic_coverage(replications, 7), replications))


if __name__ == "__main__":
    main()
