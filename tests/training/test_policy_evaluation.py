"""Off-policy evaluation against the simulator's truth, and retraining from the decision log.

A simulated shop is decided at the end of its history by a logging policy with exploration
(analyst priors, epsilon 0.4, 5% holdout; every probability logged), the decisions go to a real
decision log, and their 14-day outcomes are drawn from the simulator's true per-customer
effects. `nbo train uplift --exposures LOG` trains a challenger on that log; its true value
(computed from the ground truth for the actions it takes) must lie inside the IPS and doubly
robust confidence intervals estimated from the log alone (Fay-Feuer gamma intervals, the default).

The challenger is trained without refitting (`--no-refit`) on the customers the single-day log
split assigns to training and evaluated on the held-out customers only: evaluated on its own
training decisions, its estimates were optimistic (seen here: IPS 0.18 against a true 0.07).
The scenario seed (SCENARIO_SEED) was fixed before any result was seen and not changed
afterwards; coverage over other seeds, normal against gamma intervals, is measured by
benchmarks/bench_ope_coverage.py (benchmarks/RESULTS.md, "Off-policy evaluation").
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.catalog import Catalog, parse_catalog
from features.dataset import Dataset
from features.simulate import simulate_world
from features.simulate_outcomes import draw_decision_outcomes, true_policy_value
from features.storage import write_tables_atomic
from models.policy_config import OfferEffectPrior, PolicyConfig
from training.decide import decision_frame
from training.nbo_model import NboModel
from training.train_uplift import log_validation_customers

SCENARIO_SEED = 1
runner = CliRunner()
STAGES = ["onboarding", "active", "at_risk", "lapsed", "win_back", "upsell_ready", "renewal_due", "billing_issue"]


def simulator_catalog() -> Catalog:
    """The simulator's three campaign offers, by e-mail only (true effects do not depend on channel)."""
    offers = [
        ("discount_10", "discount", {"discount_pct": 10}),
        ("free_shipping", "free_shipping", {"fixed_cost": 4.0}),
        ("content_reminder", "content", {}),
    ]
    return parse_catalog(
        {
            "version": "simulator-offers",
            "offers": [
                {
                    "offer_id": offer_id,
                    "kind": kind,
                    "channels": ["email"],
                    "cost_per_send": {"email": 0.01},
                    "margin": 0.4,
                    "eligible_stages": STAGES,
                    **extra,
                }
                for offer_id, kind, extra in offers
            ],
        }
    )


def logging_config() -> PolicyConfig:
    priors = {
        "discount_10": OfferEffectPrior(convert=0.05),
        "free_shipping": OfferEffectPrior(convert=0.01),
        "content_reminder": OfferEffectPrior(convert=0.01),
    }
    return PolicyConfig(
        channels=("email",), exploration_share=0.4, holdout_share=0.05, uplift_priors=priors, top_k_drivers=0
    )


@dataclass
class LoggedWorld:
    world: object
    folder: Path
    log_path: Path
    dataset: Dataset
    decisions: pd.DataFrame
    end: pd.Timestamp
    observed_until: pd.Timestamp
    catalog: Catalog


def deterministic_dataset(tables: dict[str, pd.DataFrame]) -> Dataset:
    """The tables on a single-threaded DuckDB: its multi-threaded float sums (monetary features)
    differ in the last bits with the threads' partitioning, which can change a trained model."""
    import ibis

    return Dataset.from_frames(tables, con=ibis.duckdb.connect(threads=1))


def build_logged_world(directory: Path, seed: int, customers: int = 3000) -> LoggedWorld:
    """Simulate, decide at the end with the logging policy, log, draw outcomes, write the folder."""
    from serving.decision_log import DecisionLog

    world = simulate_world(customers, months=8, seed=seed, start="2025-01-01")
    end = pd.Timestamp(world.meta["end"])
    tables = world.contract_tables()
    catalog = simulator_catalog()
    logger_model = NboModel(None, None, catalog, logging_config(), explain="none")
    frame = decision_frame(deterministic_dataset(tables), end, catalog.offer_ids)
    decisions = logger_model.decisions(frame, now=end, as_of=end).table
    log_path = directory / "decisions.sqlite"
    log = DecisionLog(log_path)
    records = [
        {
            "decision_id": uuid.uuid4().hex,
            "customer_id": row.customer_id,
            "decided_at": end.isoformat() + "+00:00",
            "offer_id": row.offer_id,
            "channel": None if row.offer_id == "no_message" else row.channel,
            "propensity": float(row.propensity),
            "holdout": bool(row.holdout),
            "explored": bool(row.explored),
        }
        for row in decisions.itertuples()
    ]
    log.append(records)
    log.close()
    logged = pd.DataFrame(
        {"customer_id": decisions["customer_id"], "decided_at": end, "offer_id": decisions["offer_id"]}
    )
    drawn = draw_decision_outcomes(world.tables["ground_truth"], logged, window_days=14, seed=seed + 100)
    for name in ("transactions", "events"):
        tables[name] = pd.concat([tables[name], drawn[name]], ignore_index=True)
    folder = write_tables_atomic(tables, directory / "world")
    return LoggedWorld(
        world, folder, log_path, deterministic_dataset(tables), decisions, end, end + pd.Timedelta(days=14), catalog
    )


def train_challenger(scenario: LoggedWorld, seed: int) -> NboModel:
    """`nbo train uplift --exposures LOG` (registered as `uplift`), wrapped with the logging
    policy's settings into a challenger nbo model."""
    import mlflow

    from training.cli import app
    from training.nbo_model import UpliftPyfunc

    result = runner.invoke(
        app,
        [
            "train",
            "uplift",
            "--data",
            str(scenario.folder),
            "--exposures",
            str(scenario.log_path),
            "--observed-until",
            str(scenario.observed_until),
            "--trials",
            "2",
            "--learners",
            "t,dr",
            "--seed",
            str(seed),
            "--promote",
            "always",
            "--no-refit",
        ],
    )
    assert result.exit_code == 0, result.output
    uplift = mlflow.pyfunc.load_model("models:/uplift@champion").unwrap_python_model()
    assert isinstance(uplift, UpliftPyfunc)
    return NboModel(None, uplift.models, scenario.catalog, logging_config(), explain="none")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ope")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{directory / 'mlflow.db'}"
    try:
        logged = build_logged_world(directory, SCENARIO_SEED)
        challenger = train_challenger(logged, SCENARIO_SEED)
        yield logged, challenger
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def true_value_of(scenario: LoggedWorld, evaluation) -> float:
    """The challenger's true value on the logged customers: the truth of the actions it took."""
    from training.log_exposures import read_decision_log

    ids = read_decision_log(scenario.log_path).set_index("decision_id")["customer_id"]
    customers = ids.loc[evaluation.actions["decision_id"]].to_numpy()
    offers = evaluation.actions["challenger"].str.split("/").str[0].to_numpy()
    return true_policy_value(scenario.world.tables["ground_truth"], customers, offers, "convert")


@pytest.fixture(scope="module")
def evaluation(scenario):
    from training.policy_evaluation import evaluate_on_log

    logged, challenger = scenario
    return evaluate_on_log(
        challenger, logged.log_path, logged.dataset, observed_until=logged.observed_until, held_out_customers=True
    )


def test_challenger_true_value_lies_in_the_ips_and_dr_intervals(scenario, evaluation):
    logged, _ = scenario
    truth = true_value_of(logged, evaluation)
    held_out = log_validation_customers(logged.decisions["customer_id"].to_numpy(dtype=object))
    assert evaluation.rows == int(held_out.sum())  # never trained on (--no-refit)
    assert evaluation.unsupported == 0  # same holdout as the logging policy
    assert 0.0 < evaluation.agreement < 1.0  # it re-decided, not copied the log
    assert evaluation.ips.interval == evaluation.doubly_robust.interval == "gamma"
    assert evaluation.ips.low <= truth <= evaluation.ips.high, (truth, evaluation.ips)
    assert evaluation.doubly_robust.low <= truth <= evaluation.doubly_robust.high, (truth, evaluation.doubly_robust)
    # the champion's realised mean estimates the logging policy's true value
    logged_truth = true_policy_value(
        logged.world.tables["ground_truth"],
        logged.decisions["customer_id"][held_out],
        logged.decisions["offer_id"][held_out],
    )
    assert evaluation.champion.low <= logged_truth <= evaluation.champion.high


def test_ope_covers_a_policy_that_never_messages(scenario):
    """A policy sending nothing has true value = mean control conversion; the intervals must
    cover it although only the holdout and the explored no-message decisions match it."""
    from training.policy_evaluation import evaluate_on_log

    logged, _ = scenario
    silent = NboModel(
        None,
        None,
        logged.catalog,
        logging_config().model_copy(
            update={
                "uplift_priors": {offer: OfferEffectPrior(convert=-0.5) for offer in logged.catalog.offer_ids},
                "exploration_share": 0.0,
            }
        ),
        explain="none",
    )
    evaluation = evaluate_on_log(silent, logged.log_path, logged.dataset, observed_until=logged.observed_until)
    assert evaluation.report["challenger_messages"] == 0
    ground_truth = logged.world.tables["ground_truth"]
    customers = logged.decisions["customer_id"]
    truth = true_policy_value(ground_truth, customers, ["control"] * len(customers))
    assert evaluation.doubly_robust.low <= truth <= evaluation.doubly_robust.high
    assert evaluation.ips.low <= truth <= evaluation.ips.high


def test_policy_evaluate_cli_matches_the_library(scenario, evaluation, tmp_path):
    import mlflow

    from training.cli import app
    from training.nbo_model import log_nbo_model

    logged, challenger = scenario
    example = decision_frame(logged.dataset, logged.end, logged.catalog.offer_ids).head(20)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.set_experiment("ope-tests")
    with mlflow.start_run():
        info = log_nbo_model(challenger, example)
    out = tmp_path / "ope.json"
    result = runner.invoke(
        app,
        [
            "policy",
            "evaluate",
            "--challenger",
            f"models:/nbo/{info.registered_model_version}",
            "--log",
            str(logged.log_path),
            "--data",
            str(logged.folder),
            "--observed-until",
            str(logged.observed_until),
            "--held-out-customers",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Policy value" in result.output and "logged decisions" in result.output
    written = json.loads(out.read_text())
    direct = evaluation
    assert written["doubly_robust"]["value"] == pytest.approx(direct.doubly_robust.value)
    assert written["ips"]["value"] == pytest.approx(direct.ips.value)
    assert written["rows"] == direct.rows


def test_policy_evaluate_cli_names_a_missing_log(scenario, tmp_path):
    from training.cli import app

    logged, _ = scenario
    result = runner.invoke(
        app,
        [
            "policy",
            "evaluate",
            "--challenger",
            "models:/nbo/1",
            "--log",
            str(tmp_path / "none.sqlite"),
            "--data",
            str(logged.folder),
        ],
    )
    assert result.exit_code == 2
    assert "does not exist" in " ".join(result.output.split())


def test_exposures_training_rows_carry_logged_probabilities(scenario):
    from training.train_uplift import UpliftSetup, build_uplift_rows_from_log

    logged, _ = scenario
    rows, report = build_uplift_rows_from_log(
        logged.log_path, logged.dataset, UpliftSetup(), observed_until=logged.observed_until
    )
    decisions = logged.decisions
    randomised = decisions["holdout"] | (decisions["propensity"] < 1)
    assert report["rows"] == int(randomised.sum()) == len(rows.frame)
    assert report["deterministic_dropped"] == int((~randomised).sum())
    merged = rows.frame.merge(decisions[["customer_id", "propensity"]], on="customer_id", suffixes=("", "_logged"))
    np.testing.assert_allclose(merged["propensity"], merged["propensity_logged"].clip(lower=1 / 200))
    # a single decision day is split into a training and a validation pseudo-campaign
    assert rows.campaigns[-1].endswith("#validation") and len(rows.campaigns) == 2


def test_drawn_outcomes_do_not_depend_on_the_row_order():
    """The same decisions in another order realise the same outcomes (reproducible scenarios)."""
    world = simulate_world(300, months=3, seed=3, start="2025-01-01")
    truth = world.tables["ground_truth"]
    end = pd.Timestamp(world.meta["end"])
    offers = np.array(["discount_10", "control", "free_shipping", "content_reminder"], dtype=object)
    decisions = pd.DataFrame(
        {
            "customer_id": truth["customer_id"].to_numpy(),
            "decided_at": end,
            "offer_id": offers[np.arange(len(truth)) % 4],
        }
    )
    shuffled = decisions.sample(frac=1.0, random_state=0).reset_index(drop=True)
    first = draw_decision_outcomes(truth, decisions, window_days=14, seed=9)
    second = draw_decision_outcomes(truth, shuffled, window_days=14, seed=9)
    for name in ("transactions", "events"):
        columns = ["customer_id", "ts"]
        left = first[name].sort_values(columns).reset_index(drop=True)
        right = second[name].sort_values(columns).reset_index(drop=True)
        assert len(left) > 0
        pd.testing.assert_frame_equal(
            left.drop(columns=["order_id"], errors="ignore"), right.drop(columns=["order_id"], errors="ignore")
        )
