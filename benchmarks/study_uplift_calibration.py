"""Study (issue 6): does calibrating the uplift models' effect sizes bring the policy nearer the oracle?

The learned policy's own expected profit is far below its true profit (RESULTS.md, "Decision
policy"), a sign that the S-learner shrinks effects towards zero. This study measures that on
the held-out campaign and asks whether undoing it pays:

1. train churn and uplift exactly as `bench_policy.py` does (same world, seed and trials);
2. on the held-out campaign, per arm and outcome, fit the best linear predictor of the true
   effect from the predicted one (Chernozhukov, Demirer, Duflo, Fernandez-Val): regress the
   transformed outcome y (t - p) / (p (1 - p)) on [1, s - mean(s)], where s is the predicted
   effect and p the arm's share of the arm-and-control rows (the campaign assigns at random).
   The intercept estimates the average effect, the slope how much the predicted spread should
   be stretched (1 = calibrated, > 1 = shrunk);
3. decide again with calibrated effects (average + slope x (prediction - mean), the slope
   clipped to [0, 5]; average only for an arm whose predictions are constant) and score every
   variant against the oracle, as the benchmark does.

    python benchmarks/study_uplift_calibration.py [--customers 100000] [--seed 0] [--trials 6]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_policy as bench

from models.policy import decide
from models.policy_config import PolicyConfig, column_for
from training.decide import decision_frame
from training.nbo_model import NboModel, assemble_nbo_model
from training.train_uplift import OUTCOME_PREFIX, UpliftSetup, build_uplift_rows, fit_uplift_models

MAX_SLOPE = 5.0


@dataclass(frozen=True)
class Calibration:
    """Best linear predictor of the true effect from the predicted one, on randomised rows."""

    average: float
    average_se: float
    slope: float | None  # None when the predictions do not vary
    slope_se: float | None
    predicted_mean: float
    predicted_sd: float

    def apply(self, predicted: np.ndarray) -> np.ndarray:
        slope = 0.0 if self.slope is None else float(np.clip(self.slope, 0.0, MAX_SLOPE))
        return self.average + slope * (predicted - self.predicted_mean)


def best_linear_predictor(predicted: np.ndarray, outcome: np.ndarray, treated: np.ndarray) -> Calibration:
    """`Calibration` from one arm's and control's rows: predicted effects, outcomes, 1 = the arm."""
    treated = np.asarray(treated, dtype=float)
    share = treated.mean()
    if not 0 < share < 1:
        raise ValueError("need rows of both the arm and control")
    transformed = np.asarray(outcome, dtype=float) * (treated - share) / (share * (1 - share))
    predicted = np.asarray(predicted, dtype=float)
    centred = predicted - predicted.mean()
    if centred.std() < 1e-12:
        return Calibration(float(transformed.mean()), float(transformed.std(ddof=1) / np.sqrt(len(transformed))),
                           None, None, float(predicted.mean()), 0.0)  # fmt: skip
    design = np.column_stack([np.ones(len(centred)), centred])
    beta, *_ = np.linalg.lstsq(design, transformed, rcond=None)
    residual = transformed - design @ beta
    covariance = np.linalg.inv(design.T @ design) * (residual @ residual) / (len(residual) - 2)
    errors = np.sqrt(np.diag(covariance))
    return Calibration(float(beta[0]), float(errors[0]), float(beta[1]), float(errors[1]),
                       float(predicted.mean()), float(predicted.std()))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=6, help="Optuna trials per uplift outcome")
    parser.add_argument("--data", type=Path, default=None, help="a simulated world folder instead of simulating")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("features", "models.policy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    dataset, truth, end = bench.load_world(args)
    catalog = bench.load_catalog(bench.CATALOG_PATH)
    churn = bench.train_churn(dataset, end)
    setup = UpliftSetup(trials=args.trials, outcomes=("convert", "unsubscribe"), seed=args.seed)
    uplift = fit_uplift_models(build_uplift_rows(dataset, setup), setup)
    frame = decision_frame(dataset, end, catalog.offer_ids)
    config = PolicyConfig(exploration_share=0.05, holdout_share=0.05)
    assembled = assemble_nbo_model(churn, uplift.models, catalog, frame, config=config)
    nbo = NboModel(churn, uplift.models, catalog, config, send_time_model=assembled.send_time_model,
                   value=assembled.value, explain="none")  # fmt: skip
    scored, _ = nbo.decision_inputs(frame)
    offers = [str(arm) for arm in uplift.models.arms]

    def run(inputs: pd.DataFrame) -> tuple[np.ndarray, int, object]:
        decided = decide(inputs, catalog, end, config, as_of=end, send_time_model=nbo.send_time_model)
        options = bench.chosen_options(decided.table, decided.option_labels)
        return options, int((options >= 0).sum()), decided

    oracle_options, oracle_messages, oracle = run(bench.oracle_frame(scored, truth, offers))
    oracle_profit = bench.true_profit(oracle_options, oracle)

    held_out = uplift.rows.frame[uplift.validation]
    assigned = held_out["offer_id"].to_numpy(dtype=object)
    calibrations: dict[str, dict[str, Calibration]] = {}
    for outcome, choice in uplift.choices.items():
        y = held_out[OUTCOME_PREFIX + outcome].to_numpy(dtype=float)
        calibrations[outcome] = {}
        for position, arm in enumerate(offers):
            rows = (assigned == arm) | (assigned == "control")
            calibrations[outcome][arm] = best_linear_predictor(
                choice.validation_effects[rows, position], y[rows], assigned[rows] == arm
            )

    def calibrated(outcomes: tuple[str, ...], with_slope: bool) -> pd.DataFrame:
        replaced = scored.copy()
        for outcome in outcomes:
            for arm, calibration in calibrations[outcome].items():
                column = column_for(f"uplift_{outcome}", arm)
                if not with_slope:
                    calibration = Calibration(calibration.average, calibration.average_se, None, None,
                                              calibration.predicted_mean, calibration.predicted_sd)  # fmt: skip
                replaced[column] = calibration.apply(replaced[column].to_numpy(dtype=float))
        return replaced

    variants = {
        "learned, as trained": scored,
        "conversion calibrated (average + slope)": calibrated(("convert",), True),
        "conversion calibrated (average only)": calibrated(("convert",), False),
        "conversion and unsubscribe calibrated (average + slope)": calibrated(("convert", "unsubscribe"), True),
    }
    results = []
    for name, inputs in variants.items():
        options, messages, _ = run(inputs)
        profit = bench.true_profit(options, oracle)
        results.append(
            {"policy": name, "messages": messages, "true_profit": profit, "of_oracle": profit / oracle_profit}
        )

    print(f"\n{len(scored):,} customers, seed {args.seed}; learners {uplift.models.metadata['learners']}")
    print("\n| outcome | arm | predicted mean (sd) | average effect on the held-out campaign | slope |")
    print("|---|---|---|---|---|")
    for outcome, by_arm in calibrations.items():
        for arm, c in by_arm.items():
            slope = "constant predictions" if c.slope is None else f"{c.slope:.2f} +- {c.slope_se:.2f}"
            print(f"| {outcome} | {arm} | {c.predicted_mean:.4f} ({c.predicted_sd:.4f}) | "
                  f"{c.average:.4f} +- {c.average_se:.4f} | {slope} |")  # fmt: skip
    print(f"\noracle: {oracle_messages:,} messages, true profit {oracle_profit:,.1f}\n")
    print("| policy | messages | true incremental profit | of the oracle |")
    print("|---|---|---|---|")
    for item in results:
        print(f"| {item['policy']} | {item['messages']:,} | {item['true_profit']:,.1f} | {item['of_oracle']:.3f} |")
    path = args.json or bench.OUT / f"study_uplift_calibration_{len(scored)}_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "customers": len(scored), "seed": args.seed, "learners": uplift.models.metadata["learners"],
        "oracle_profit": oracle_profit, "oracle_messages": oracle_messages, "policies": results,
        "calibrations": {o: {a: asdict(c) for a, c in by.items()} for o, by in calibrations.items()},
    }  # fmt: skip
    path.write_text(json.dumps(summary, indent=2))
    print(f"results in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
