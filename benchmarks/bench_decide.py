"""Batch decision throughput (issue 6): one decision per customer for a 1M-customer world.

Models (churn + uplift, trained by the project's own code on a small simulated world with the
same feature set; inference cost depends on the trees, not on the training size) are assembled
into the deployable `NboModel`. Then, on the big world (default benchmarks/out/
world_1000000_12m_seed0, simulated by bench_features.py; simulated here if absent):

1. the decision input is built: snapshot at the world's end + customer context (timed apart);
2. `NboModel.decisions` runs with the shipped default: churn risk, per-offer uplift, baseline
   conversion, customer values, rules, choice, send times, rule reason codes for everyone and
   SHAP driver phrases for every messaged customer (timed: the target);
3. the same with `explain="all"` (churn drivers for every customer too), with `explain="none"`
   (rule reason codes only), scoring alone and the policy alone (`models.policy.decide` on
   already-scored rows), to show where the time goes.

Target: >= 10,000 customers per second for step 2 on this machine.

    python benchmarks/bench_decide.py [--data benchmarks/out/world_1000000_12m_seed0] [--train-customers 20000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.catalog import load_catalog  # noqa: E402
from features.dataset import Dataset  # noqa: E402
from features.io import open_dataset  # noqa: E402
from features.simulate import read_world_meta, simulate_world, write_world  # noqa: E402
from features.snapshot import build_training_set  # noqa: E402
from models.churn import ChurnClassifier  # noqa: E402
from models.policy import decide  # noqa: E402
from models.policy_config import NO_MESSAGE  # noqa: E402
from training.churn import feature_columns  # noqa: E402
from training.decide import decision_frame  # noqa: E402
from training.nbo_model import NboModel, assemble_nbo_model  # noqa: E402
from training.train_uplift import UpliftSetup, build_uplift_rows, fit_uplift_models  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
DEFAULT_WORLD = OUT / "world_1000000_12m_seed0"
TARGET_PER_SECOND = 10_000

logger = logging.getLogger("bench_decide")


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def train_models(customers: int, seed: int, trials: int) -> tuple[ChurnClassifier, object, pd.Timestamp]:
    """Churn and uplift models trained on a small world (same code as `nbo train`)."""
    world = simulate_world(customers, months=12, seed=seed)
    dataset = Dataset.from_frames(world.contract_tables())
    end = pd.Timestamp(world.meta["end"])
    dates = [end - pd.Timedelta(days=91 + 30 * k) for k in range(4)][::-1]
    stacked = build_training_set(dataset, dates, 90, feature_set="all")
    columns = feature_columns(stacked)
    churn = ChurnClassifier(n_estimators=600).fit(
        stacked[columns], stacked["label_churned"].to_numpy(), as_of=stacked["as_of"].to_numpy(),
        customer_id=stacked["customer_id"].to_numpy(),
    )  # fmt: skip
    setup = UpliftSetup(trials=trials, outcomes=("convert", "unsubscribe"), seed=seed)
    uplift = fit_uplift_models(build_uplift_rows(dataset, setup), setup)
    return churn, uplift.models, end


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_WORLD)
    parser.add_argument("--customers", type=int, default=1_000_000, help="world size when --data must be simulated")
    parser.add_argument("--train-customers", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="LightGBM prediction threads")
    parser.add_argument("--explain-all", action="store_true", help="also time churn drivers for every customer")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("features").setLevel(logging.WARNING)
    catalog = load_catalog(ROOT / "features" / "default_catalog.yaml")
    seconds: dict[str, float] = {}

    if not (args.data / "world.json").is_file():
        started = time.perf_counter()
        write_world(simulate_world(args.customers, months=12, seed=0), args.data)
        seconds["simulate"] = time.perf_counter() - started

    started = time.perf_counter()
    churn, uplift, _ = train_models(args.train_customers, 1, args.trials)
    seconds["train_models_small_world"] = time.perf_counter() - started

    end = pd.Timestamp(read_world_meta(args.data)["end"])
    dataset = open_dataset(args.data, validate=False)
    started = time.perf_counter()
    frame = decision_frame(dataset, end, catalog.offer_ids)
    seconds["snapshot_and_context"] = time.perf_counter() - started
    n = len(frame)
    logger.info("decision input: %d customers x %d columns", n, frame.shape[1])

    started = time.perf_counter()
    nbo = assemble_nbo_model(churn, uplift, catalog, frame)
    nbo.threads = args.threads
    seconds["fit_send_time_model"] = time.perf_counter() - started

    started = time.perf_counter()
    decisions = nbo.decisions(frame, as_of=end)
    seconds["decide_with_reasons_and_drivers"] = time.perf_counter() - started
    table = decisions.table
    del decisions

    def variant(explain: str) -> NboModel:
        return NboModel(
            churn, uplift, catalog, nbo.config, send_time_model=nbo.send_time_model, value=nbo.value,
            explain=explain, threads=args.threads,
        )  # fmt: skip

    if args.explain_all:
        started = time.perf_counter()
        variant("all").decisions(frame, as_of=end)
        seconds["decide_churn_drivers_for_everyone"] = time.perf_counter() - started
    lean = variant("none")
    started = time.perf_counter()
    lean.decisions(frame, as_of=end)
    seconds["decide_rule_codes_only"] = time.perf_counter() - started

    started = time.perf_counter()
    parts = [lean.decision_inputs(frame.iloc[start : start + 200_000].reset_index(drop=True))[0]
             for start in range(0, n, 200_000)]  # fmt: skip
    seconds["scoring_everyone_no_rule_skip"] = time.perf_counter() - started
    started = time.perf_counter()
    for part in parts:
        decide(part, catalog, end, nbo.config, as_of=end, send_time_model=nbo.send_time_model)
    seconds["policy_only"] = time.perf_counter() - started
    del parts

    rate = n / seconds["decide_with_reasons_and_drivers"]
    messaged = table["offer_id"] != NO_MESSAGE
    summary = {
        "customers": n,
        "threads": args.threads,
        "world": str(args.data),
        "uplift_learners": uplift.metadata.get("learners"),
        "churn_trees": int(churn.best_iteration_),
        "messages": int(messaged.sum()),
        "with_churn_drivers": int((table["churn_drivers"].str.len() > 0).sum()),
        "with_uplift_drivers": int((table.loc[messaged, "uplift_drivers"].str.len() > 0).sum()),
        "with_reason_codes": int((table["reason_codes"].str.len() > 0).sum()),
        "seconds": seconds,
        "customers_per_second": rate,
        "customers_per_second_rule_codes_only": n / seconds["decide_rule_codes_only"],
        "peak_gib": _peak_gib(),
        "target_met": rate >= TARGET_PER_SECOND,
        "example": table[messaged].head(2).astype(str).to_dict(orient="records"),
    }
    print(
        f"\n{n:,} customers, {args.threads} prediction threads; uplift learners {summary['uplift_learners']}; "
        f"churn trees {summary['churn_trees']}"
    )
    print("| stage | seconds | customers/s |")
    print("|---|---|---|")
    for stage, value in seconds.items():
        per_second = f"{n / value:,.0f}" if stage.startswith(("decide", "scoring", "policy")) else "-"
        print(f"| {stage} | {value:,.1f} | {per_second} |")
    print(f"\ndecisions with reasons and drivers: {rate:,.0f} customers/s (target >= {TARGET_PER_SECOND:,}); "
          f"peak memory {summary['peak_gib']:.1f} GiB")  # fmt: skip
    path = args.json or OUT / f"bench_decide_{n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    print(f"results in {path}")
    return 0 if summary["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
