"""Decision policy benchmark (issue 6): learned policy vs oracle vs "discount the top 30% churn risk".

On a simulated world with known ground truth, at the world's end:

1. a churn model (stacked snapshots before the end, labels inside the data) and uplift models
   (`training.train_uplift`: every past campaign, learner chosen by held-out Qini) are trained;
2. the learned policy decides with the nbo model (`models.policy.decide` on its scores);
3. the oracle runs the same `decide` with the true effects (ground_truth: tau_convert_<offer>,
   tau_unsubscribe_<offer>, p_convert_control) in the uplift columns: same rules, same holdout,
   same exploration draws, same catalog, channels and customer values;
4. the baseline sends discount_10 to the 30% of customers with the highest churn risk (where
   the rules allow it: consent, holdout, cooldowns...), on the cheapest allowed channel.

Each policy is scored by the true expected incremental profit of its choices: the decision
value formula (DESIGN.md) evaluated on the true effects, i.e. the oracle's option values:
tau_convert x margin x order value - send cost - discount x (p_control + tau_convert)
- tau_unsubscribe x subscriber value. Order and subscriber values are the same business inputs
every policy uses. Targets: learned >= 80% of oracle and >= 1.5x the baseline.

    python benchmarks/bench_policy.py [--customers 100000] [--seed 0] [--trials 4] [--data WORLD_DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.catalog import load_catalog  # noqa: E402
from features.dataset import Dataset  # noqa: E402
from features.io import open_dataset  # noqa: E402
from features.simulate import read_world_meta, simulate_world  # noqa: E402
from features.snapshot import build_training_set  # noqa: E402
from models.churn import ChurnClassifier  # noqa: E402
from models.policy import Decisions, decide  # noqa: E402
from models.policy_config import BASELINE_CONVERT, NO_MESSAGE, PolicyConfig, column_for  # noqa: E402
from training.churn import feature_columns  # noqa: E402
from training.decide import decision_frame  # noqa: E402
from training.nbo_model import NboModel, assemble_nbo_model  # noqa: E402
from training.train_uplift import UpliftSetup, build_uplift_rows, fit_uplift_models  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
CATALOG_PATH = ROOT / "features" / "default_catalog.yaml"
TARGET_OF_ORACLE = 0.80
TARGET_OVER_BASELINE = 1.5
BASELINE_SHARE = 0.30
BASELINE_OFFER = "discount_10"
CHURN_HORIZON_DAYS = 90

logger = logging.getLogger("bench_policy")


def load_world(args: argparse.Namespace) -> tuple[Dataset, pd.DataFrame, pd.Timestamp]:
    """The contract tables as a Dataset, the ground truth, and the world's end."""
    if args.data is not None:
        meta = read_world_meta(args.data)
        dataset = open_dataset(args.data, validate=False)
        truth = pd.read_parquet(Path(args.data) / "ground_truth.parquet")
        return dataset, truth, pd.Timestamp(meta["end"])
    world = simulate_world(args.customers, months=12, seed=args.seed)
    return Dataset.from_frames(world.contract_tables()), world.tables["ground_truth"], pd.Timestamp(world.meta["end"])


def train_churn(dataset: Dataset, end: pd.Timestamp) -> ChurnClassifier:
    """Calibrated churn model on snapshots whose 90-day labels end inside the data."""
    last_label_start = end - pd.Timedelta(days=CHURN_HORIZON_DAYS + 1)
    dates = [last_label_start - pd.Timedelta(days=30 * k) for k in range(4)][::-1]
    stacked = build_training_set(dataset, dates, CHURN_HORIZON_DAYS, feature_set="all")
    columns = feature_columns(stacked)
    return ChurnClassifier(n_estimators=600).fit(
        stacked[columns],
        stacked["label_churned"].to_numpy(),
        as_of=stacked["as_of"].to_numpy(),
        customer_id=stacked["customer_id"].to_numpy(),
    )


def oracle_frame(scored: pd.DataFrame, truth: pd.DataFrame, offers: list[str]) -> pd.DataFrame:
    """The learned policy's decision input with the true effects in the model columns."""
    aligned = scored[["customer_id"]].merge(truth, on="customer_id", how="left")
    if aligned["p_convert_control"].isna().any():
        raise ValueError("ground_truth lacks some customers of the snapshot")
    true_columns = {BASELINE_CONVERT: aligned["p_convert_control"].to_numpy()}
    for offer in offers:
        true_columns[column_for("uplift_convert", offer)] = aligned[f"tau_convert_{offer}"].to_numpy()
        true_columns[column_for("uplift_unsubscribe", offer)] = aligned[f"tau_unsubscribe_{offer}"].to_numpy()
        true_columns[column_for("uplift_revenue", offer)] = aligned[f"tau_revenue_{offer}"].to_numpy()
    kept = scored.drop(columns=[c for c in true_columns if c in scored.columns])
    return pd.concat([kept, pd.DataFrame(true_columns, index=scored.index)], axis=1)


def feature_ceiling_frame(
    scored: pd.DataFrame, truth: pd.DataFrame, offers: list[str], columns: list[str]
) -> pd.DataFrame:
    """The learned input with conversion uplift replaced by a 3-fold cross-fitted LightGBM
    regression of the *true* effects on the snapshot features: not a deployable policy, but
    about the best any learner reading these features could do (no outcome noise at all)."""
    import lightgbm as lgb
    from sklearn.model_selection import cross_val_predict

    from models.uplift_base import FeatureEncoder

    aligned = scored[["customer_id"]].merge(truth, on="customer_id", how="left")
    features = FeatureEncoder.fit(scored[columns]).transform(scored[columns])
    replaced = {}
    for offer in offers:
        regressor = lgb.LGBMRegressor(n_estimators=300, num_leaves=31, learning_rate=0.05, verbose=-1, n_jobs=2)
        target = aligned[f"tau_convert_{offer}"].to_numpy()
        replaced[column_for("uplift_convert", offer)] = cross_val_predict(regressor, features, target, cv=3)
    kept = scored.drop(columns=list(replaced))
    return pd.concat([kept, pd.DataFrame(replaced, index=scored.index)], axis=1)


def chosen_options(table: pd.DataFrame, labels: tuple[str, ...]) -> np.ndarray:
    """Option index of each decision (-1 for no message)."""
    index = {label: position for position, label in enumerate(labels)}
    keys = (table["offer_id"].astype(str) + "/" + table["channel"].astype(str)).to_numpy()
    messaged = (table["offer_id"] != NO_MESSAGE).to_numpy()
    return np.array([index[key] if sent else -1 for key, sent in zip(keys, messaged, strict=True)])


def true_profit(options: np.ndarray, oracle: Decisions) -> float:
    """Sum of the true option values of the chosen options (no message is worth 0)."""
    rows = np.flatnonzero(options >= 0)
    values = oracle.values[rows, options[rows]].astype(np.float64)
    if np.isnan(values).any():
        raise ValueError(f"{int(np.isnan(values).sum())} chosen options have no true value")
    return float(values.sum())


def churn_baseline(churn_risk: np.ndarray, oracle: Decisions, grid_costs: dict[str, float], pool: str) -> np.ndarray:
    """discount_10 to the top 30% by churn risk where a discount_10 option is allowed, cheapest channel.

    pool 'all': the top 30% of every customer, skipping those the rules forbid; 'eligible': the
    top 30% of the customers who may receive it.
    """
    labels = oracle.option_labels
    candidates = [k for k, label in enumerate(labels) if label.split("/")[0] == BASELINE_OFFER]
    candidates.sort(key=lambda k: grid_costs[labels[k]])
    allowed = oracle.suppression[:, candidates] == 0
    eligible = allowed.any(axis=1)
    first_allowed = np.array(candidates)[np.argmax(allowed, axis=1)]
    order = np.argsort(-churn_risk, kind="stable")
    if pool == "all":
        top = np.zeros(len(churn_risk), dtype=bool)
        top[order[: round(BASELINE_SHARE * len(churn_risk))]] = True
        chosen = top & eligible
    else:
        ranked = order[eligible[order]]
        chosen = np.zeros(len(churn_risk), dtype=bool)
        chosen[ranked[: round(BASELINE_SHARE * int(eligible.sum()))]] = True
    return np.where(chosen, first_allowed, -1)


def describe(options: np.ndarray, oracle: Decisions, name: str, profit: float, customers: int) -> dict:
    labels = np.array((*oracle.option_labels, "no_message"), dtype=object)
    counts = pd.Series(labels[options]).value_counts()
    return {
        "policy": name,
        "true_profit": profit,
        "true_profit_per_1000_customers": 1000 * profit / customers,
        "messages": int((options >= 0).sum()),
        "by_option": {str(key): int(value) for key, value in counts.items() if key != "no_message"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=4, help="Optuna trials per uplift outcome")
    parser.add_argument("--data", type=Path, default=None, help="a simulated world folder instead of simulating")
    parser.add_argument("--exploration-share", type=float, default=0.05)
    parser.add_argument("--holdout-share", type=float, default=0.05)
    parser.add_argument("--json", type=Path, default=None, help="where to write the results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("features").setLevel(logging.WARNING)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    dataset, truth, end = load_world(args)
    seconds["world"] = time.perf_counter() - started
    catalog = load_catalog(CATALOG_PATH)

    started = time.perf_counter()
    churn = train_churn(dataset, end)
    seconds["train_churn"] = time.perf_counter() - started

    started = time.perf_counter()
    setup = UpliftSetup(trials=args.trials, outcomes=("convert", "unsubscribe"), seed=args.seed)
    rows = build_uplift_rows(dataset, setup)
    seconds["uplift_rows"] = time.perf_counter() - started
    started = time.perf_counter()
    uplift = fit_uplift_models(rows, setup)
    seconds["train_uplift"] = time.perf_counter() - started
    logger.info("uplift learners %s, held-out Qini %s", uplift.models.metadata["learners"], uplift.metrics)

    started = time.perf_counter()
    frame = decision_frame(dataset, end, catalog.offer_ids)
    seconds["snapshot"] = time.perf_counter() - started
    config = PolicyConfig(exploration_share=args.exploration_share, holdout_share=args.holdout_share)
    nbo = assemble_nbo_model(churn, uplift.models, catalog, frame, config=config)
    nbo = NboModel(churn, uplift.models, catalog, config, send_time_model=nbo.send_time_model, value=nbo.value,
                   explain="none")  # fmt: skip

    started = time.perf_counter()
    scored, _ = nbo.decision_inputs(frame)
    learned = decide(scored, catalog, end, config, as_of=end, send_time_model=nbo.send_time_model)
    seconds["decide_learned"] = time.perf_counter() - started
    offers = list(uplift.models.arms)
    oracle = decide(oracle_frame(scored, truth, offers), catalog, end, config, as_of=end,
                    send_time_model=nbo.send_time_model)  # fmt: skip

    started = time.perf_counter()
    ceiling = decide(feature_ceiling_frame(scored, truth, offers, list(uplift.models.feature_columns)), catalog, end,
                     config, as_of=end, send_time_model=nbo.send_time_model)  # fmt: skip
    seconds["feature_ceiling"] = time.perf_counter() - started

    grid_costs = {label: offer_cost for label, offer_cost in zip(
        learned.option_labels,
        [catalog.offer(label.split("/")[0]).cost_per_send[label.split("/")[1]] for label in learned.option_labels],
        strict=True,
    )}  # fmt: skip
    n = len(scored)
    learned_options = chosen_options(learned.table, learned.option_labels)
    ceiling_options = chosen_options(ceiling.table, ceiling.option_labels)
    oracle_options = chosen_options(oracle.table, oracle.option_labels)
    churn_risk = scored["churn_risk"].to_numpy(dtype=float)
    baseline_all = churn_baseline(churn_risk, oracle, grid_costs, "all")
    baseline_eligible = churn_baseline(churn_risk, oracle, grid_costs, "eligible")
    results = [
        describe(oracle_options, oracle, "oracle (true effects, same rules)", true_profit(oracle_options, oracle), n),
        describe(learned_options, oracle, "learned (nbo model)", true_profit(learned_options, oracle), n),
        describe(
            baseline_all,
            oracle,
            "discount to top 30% churn risk (of all customers, where allowed)",
            true_profit(baseline_all, oracle),
            n,
        ),
        describe(
            baseline_eligible,
            oracle,
            "discount to top 30% churn risk (of customers it may reach)",
            true_profit(baseline_eligible, oracle),
            n,
        ),
        describe(
            ceiling_options,
            oracle,
            "feature ceiling (true effects regressed on the features; not deployable)",
            true_profit(ceiling_options, oracle),
            n,
        ),
    ]
    oracle_profit, learned_profit = results[0]["true_profit"], results[1]["true_profit"]
    baseline_profit = results[2]["true_profit"]
    of_oracle = learned_profit / oracle_profit
    over_baseline = learned_profit / baseline_profit if baseline_profit > 0 else float("inf")
    over_eligible = learned_profit / results[3]["true_profit"] if results[3]["true_profit"] > 0 else float("inf")
    expected_learned = float(learned.table["expected_value"].sum())
    summary = {
        "customers": n,
        "seed": args.seed,
        "exploration_share": config.exploration_share,
        "holdout_share": config.holdout_share,
        "uplift_learners": uplift.models.metadata["learners"],
        "uplift_validation": uplift.metrics,
        "churn_trees": int(churn.best_iteration_),
        "policies": results,
        "learned_share_of_oracle": of_oracle,
        "learned_over_baseline": over_baseline,
        "learned_over_baseline_eligible_pool": over_eligible,
        "learned_expected_profit_by_model": expected_learned,
        "feature_ceiling_share_of_oracle": results[4]["true_profit"] / oracle_profit,
        "targets_met": bool(of_oracle >= TARGET_OF_ORACLE and over_baseline >= TARGET_OVER_BASELINE),
        "seconds": seconds,
    }
    print(f"\n{n:,} customers, seed {args.seed}, decision at {end} (holdout {config.holdout_share:.0%}, "
          f"exploration {config.exploration_share:.0%})")  # fmt: skip
    print("| policy | messages | true incremental profit | per 1,000 customers |")
    print("|---|---|---|---|")
    for item in results:
        print(f"| {item['policy']} | {item['messages']:,} | {item['true_profit']:,.1f} | "
              f"{item['true_profit_per_1000_customers']:,.1f} |")  # fmt: skip

    def ratio(value: float) -> str:
        # a baseline that loses money makes any profitable policy "infinitely" better: say so
        return f"{value:.2f}x" if np.isfinite(value) else "n/a (baseline loses money)"

    print(
        f"\nlearned / oracle = {of_oracle:.3f} (target >= {TARGET_OF_ORACLE}); learned / baseline = "
        f"{ratio(over_baseline)} (target >= {TARGET_OVER_BASELINE}x); vs eligible-pool baseline {ratio(over_eligible)}"
    )
    print(f"learned - baseline = {learned_profit - baseline_profit:,.1f}")
    print(f"feature ceiling / oracle = {results[4]['true_profit'] / oracle_profit:.3f}")
    print(f"learned policy's own expected profit {expected_learned:,.1f} vs true {learned_profit:,.1f}")
    print(f"uplift learners {uplift.models.metadata['learners']}; timings "
          + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))  # fmt: skip
    path = args.json or OUT / f"bench_policy_{n}_seed{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"results in {path}")
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
