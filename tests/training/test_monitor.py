"""`nbo monitor` on the simulated shop: a mid-way behaviour shift is flagged, stable features are not.

Scenario: a 10-month world; from 2025-07-01 every customer buys at a fifth of their rate and
stops opening/clicking e-mail (`features.simulate_shift`). Reference = snapshot as of the shift
date (no shifted row in it), current = snapshot three months later, control = the same later
snapshot of the world without the shift.

Chosen from the mechanics, before looking at results:
* drifted: `frequency_90d`, `monetary_90d`, `email_opens_90d`, `email_clicks_90d` — counts over
  a 90-day window that lies wholly after the shift, where the shift cuts their rate to 20% / 0%;
* stable: `acquisition_channel`, `avg_order_value`, `discount_order_share`, `top_category`,
  `preferred_hour` — they describe fixed traits (acquisition, spend level, discount propensity,
  favourite category, preferred hour); all-history ratios and modes are unchanged in
  expectation when orders are thinned at random, and the shift leaves order contents alone.
"""

from __future__ import annotations

import base64
import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.dataset import Dataset
from features.simulate import simulate_world
from features.simulate_shift import BehaviourShift, shift_behaviour
from features.snapshot import build_snapshot
from models.drift import DriftConfig, drift_report
from training.cli import app
from training.monitor import (
    REFERENCE_ARTIFACT,
    load_drift_config,
    log_reference_sample,
    resolve_reference,
    run_monitor,
)

runner = CliRunner()
TABLES = ("customers", "transactions", "events", "exposures", "subscriptions")
SHIFT = BehaviourShift(at="2025-07-01", share=1.0, purchase_keep=0.2, email_keep=0.0, seed=0)
DRIFTED = ("frequency_90d", "monetary_90d", "email_opens_90d", "email_clicks_90d")
STABLE = ("acquisition_channel", "avg_order_value", "discount_order_share", "top_category", "preferred_hour")


def _says(output: str, message: str) -> bool:
    """Whether console output holds `message`, however Rich wrapped it (it folds long paths mid-word)."""
    return "".join(message.split()) in "".join(output.split())


def _dataset(world) -> Dataset:
    return Dataset.from_frames({name: world.tables[name] for name in TABLES})


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    world = simulate_world(3000, months=10, seed=11)
    shifted = shift_behaviour(world, SHIFT)
    frames = {
        "reference": build_snapshot(_dataset(world), SHIFT.at),
        "current": build_snapshot(_dataset(shifted), "2025-10-01"),
        "control": build_snapshot(_dataset(world), "2025-10-01"),
    }
    folder = tmp_path_factory.mktemp("monitor")
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / f"{name}.parquet"
        frame.to_parquet(paths[name], index=False)
    return {"frames": frames, "paths": paths, "customers": world.tables["customers"]}


def test_shift_changes_only_rows_after_the_date_and_is_reproducible():
    world = simulate_world(300, months=8, seed=2)
    shifted = shift_behaviour(world, SHIFT)
    again = shift_behaviour(world, SHIFT)
    at = pd.Timestamp(SHIFT.at)
    for table in ("transactions", "events"):
        before, after = world.tables[table], shifted.tables[table]
        pd.testing.assert_frame_equal(
            before[before["ts"] < at].reset_index(drop=True), after[after["ts"] < at].reset_index(drop=True)
        )
        pd.testing.assert_frame_equal(after, again.tables[table])
    late = world.tables["transactions"]["ts"] >= at
    late_orders = world.tables["transactions"].loc[late, "order_id"].nunique()
    kept = shifted.tables["transactions"].loc[shifted.tables["transactions"]["ts"] >= at, "order_id"].nunique()
    assert 0.1 < kept / late_orders < 0.3  # purchase_keep = 0.2
    events = shifted.tables["events"]
    email_responses = (events["channel"] == "email") & events["event_type"].isin(["open", "click"])
    assert not (email_responses & (events["ts"] >= at)).any()
    assert shifted.tables["customers"] is world.tables["customers"]
    with pytest.raises(ValueError, match="share between 0 and 1"):
        shift_behaviour(world, BehaviourShift(at="2025-07-01", purchase_keep=1.5))


def test_monitor_flags_the_shifted_features_and_not_the_stable_ones(scenario):
    frames = scenario["frames"]
    shifted = drift_report(frames["reference"], frames["current"])
    control = drift_report(frames["reference"], frames["control"])
    config = DriftConfig()
    for column in DRIFTED:
        assert shifted.value(column) > config.psi.alert, column
        # Without the shift the same three months do not move them: the alert is the shift's doing.
        assert control.value(column) < config.psi.warn, column
    for column in STABLE:
        assert shifted.value(column) < config.psi.warn, column
    flagged = set(shifted.flagged("psi"))
    assert set(DRIFTED) <= flagged and not set(STABLE) & flagged
    assert shifted.status == "alert"


def test_cli_exit_codes_html_json_and_mlflow(scenario, tracking_store, tmp_path):
    paths = scenario["paths"]
    out, summary_path = tmp_path / "monitor.html", tmp_path / "monitor.json"
    result = runner.invoke(
        app,
        [
            "monitor", "--reference", str(paths["reference"]), "--current", str(paths["current"]),
            "--out", str(out), "--json-out", str(summary_path), "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "alert"
    assert set(DRIFTED) <= set(summary["flagged"]["alert"]["psi"])
    assert not set(STABLE) & set(summary["flagged"]["alert"]["psi"] + summary["flagged"]["warn"]["psi"])
    page = out.read_text()
    assert "Status: alert" in page and "frequency_90d" in page
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
    assert png.startswith(b"\x89PNG")

    client = MlflowClient()
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.metrics["psi.feature.frequency_90d"] == pytest.approx(
        next(row["value"] for row in summary["results"] if row["column"] == "frequency_90d" and row["check"] == "psi")
    )
    assert run.data.tags["monitor_status"] == "alert"
    assert {item.path for item in client.list_artifacts(run.info.run_id)} >= {"monitor.html", "monitor.json", "plots"}

    same = runner.invoke(
        app, ["monitor", "--reference", str(paths["reference"]), "--current", str(paths["reference"]),
              "--out", str(tmp_path / "same.html"), "--no-track"],
    )  # fmt: skip
    assert same.exit_code == 0, same.output
    tolerant = runner.invoke(
        app, ["monitor", "--reference", str(paths["reference"]), "--current", str(paths["current"]),
              "--out", str(tmp_path / "never.html"), "--no-track", "--fail-on", "never"],
    )  # fmt: skip
    assert tolerant.exit_code == 0, tolerant.output


def test_cli_decision_mix_alone_can_alert(scenario, tmp_path):
    reference = pd.DataFrame({"offer_id": ["no_message"] * 600 + ["discount_10"] * 400})
    current = pd.DataFrame({"offer_id": ["no_message"] * 300 + ["discount_10"] * 500 + ["free_shipping"] * 200})
    reference.to_parquet(tmp_path / "d_ref.parquet")
    current.to_parquet(tmp_path / "d_cur.parquet")
    reference_path = str(scenario["paths"]["reference"])
    arguments = ["monitor", "--reference", reference_path, "--current", reference_path, "--no-track", "--json"]
    arguments += ["--out", str(tmp_path / "d.html"), "--decisions-reference", str(tmp_path / "d_ref.parquet")]
    result = runner.invoke(app, [*arguments, "--decisions-current", str(tmp_path / "d_cur.parquet")])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["flagged"]["alert"] == {"decision_mix": ["offer_id"], "missing": [], "psi": [], "range": []}


def test_cli_bad_input_exits_2_with_a_message(scenario, tracking_store, tmp_path):
    reference = str(scenario["paths"]["reference"])
    missing = runner.invoke(
        app, ["monitor", "--reference", reference, "--current", str(tmp_path / "nope.parquet"), "--no-track"]
    )
    assert missing.exit_code == 2 and _says(missing.output, "nope.parquet not found")
    config = tmp_path / "monitor.yaml"
    config.write_text("psi: {warn: 0.3, alert: 0.2}\n")
    bad = runner.invoke(
        app, ["monitor", "--reference", reference, "--current", reference, "--config", str(config), "--no-track"]
    )
    assert bad.exit_code == 2 and _says(bad.output, "below the warn threshold")
    empty = tmp_path / "empty.parquet"
    scenario["frames"]["reference"].head(0).to_parquet(empty)
    nothing = runner.invoke(app, ["monitor", "--reference", reference, "--current", str(empty), "--no-track"])
    assert nothing.exit_code == 2 and _says(nothing.output, "has 0 rows")
    unknown = runner.invoke(app, ["monitor", "--reference", "not-a-run", "--current", reference, "--no-track"])
    assert unknown.exit_code == 2 and _says(unknown.output, "neither an existing Parquet file")


def test_config_from_yaml(tmp_path):
    path = tmp_path / "monitor.yaml"
    path.write_text("psi: {warn: 0.05, alert: 0.2}\nbins: 5\nignore: [cohort_month]\n")
    config = load_drift_config(path)
    assert (config.psi.warn, config.psi.alert, config.bins, config.ignore) == (0.05, 0.2, 5, ("cohort_month",))
    assert config.score_psi.alert == 0.25  # untouched defaults stay
    path.write_text("psi_typo: 1\n")
    with pytest.raises(ValueError, match="psi_typo"):
        load_drift_config(path)


def test_reference_from_a_run_or_a_registered_model(scenario, tracking_store):
    frame = scenario["frames"]["reference"].copy().assign(label_churned=0)
    with mlflow.start_run() as churn_run:
        rows = log_reference_sample(frame, max_rows=400)
    assert rows == 400
    by_run, where = resolve_reference(churn_run.info.run_id)
    assert len(by_run) == 400 and "label_churned" not in by_run.columns and REFERENCE_ARTIFACT in where
    assert set(by_run["customer_id"]) <= set(frame["customer_id"])
    pd.testing.assert_frame_equal(resolve_reference(f"runs:/{churn_run.info.run_id}")[0], by_run)

    # An nbo package run has no sample: the reference comes from the churn version it was built from.
    client = MlflowClient()
    with mlflow.start_run() as package_run:
        mlflow.log_text("packaged", "note.txt")
    for name in ("churn", "nbo"):
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
    churn_version = client.create_model_version("churn", f"runs:/{churn_run.info.run_id}/model", churn_run.info.run_id)
    nbo_version = client.create_model_version(
        "nbo", f"runs:/{package_run.info.run_id}/model", package_run.info.run_id,
        tags={"churn_version": str(churn_version.version)},
    )  # fmt: skip
    client.set_registered_model_alias("nbo", "monitored", nbo_version.version)
    by_model, where = resolve_reference("models:/nbo@monitored")
    pd.testing.assert_frame_equal(by_model, by_run)
    assert f"churn v{churn_version.version}" in where
    with pytest.raises(ValueError, match=r"has no monitoring/reference_sample\.parquet"):
        resolve_reference(package_run.info.run_id)


@pytest.fixture(scope="module")
def nbo_model(scenario, tracking_store):
    """A small real nbo model (churn + uplift + default catalog) registered in the module's store.

    Its quality does not matter here: churn is fitted on the reference snapshot against a
    recency-based label, split over three pseudo snapshot dates (the classifier needs three).
    """
    from features.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from models.churn import ChurnClassifier
    from tests.serving.model_fixture import CUSTOMER_COLUMNS, _uplift_models
    from training.nbo_model import NboModel, log_nbo_model

    snapshot = scenario["frames"]["reference"]
    features = snapshot.drop(columns=["customer_id", "as_of"])
    label = (snapshot["recency_days"].fillna(999) > 90).astype(int)
    pseudo_dates = pd.Timestamp("2025-05-01") + pd.to_timedelta(30 * (np.arange(len(snapshot)) % 3), unit="D")
    churn = ChurnClassifier(n_estimators=20, early_stopping_rounds=5, calibration="sigmoid", min_child_samples=20)
    churn.fit(features, label, as_of=pseudo_dates, customer_id=snapshot["customer_id"])
    model = NboModel(churn, _uplift_models(snapshot), load_catalog(DEFAULT_CATALOG_PATH))
    example = snapshot.head(20).merge(scenario["customers"][["customer_id", *CUSTOMER_COLUMNS]], on="customer_id")
    with mlflow.start_run():
        info = log_nbo_model(model, example)
    return {"uri": f"models:/nbo/{info.registered_model_version}", "churn": churn}


def test_scores_of_both_populations_through_the_nbo_model(scenario, nbo_model, tmp_path):
    from models.drift import numeric_psi

    snapshot = scenario["frames"]["reference"]
    churn = nbo_model["churn"]
    risk = churn.predict_proba(snapshot[list(churn.feature_names_in_)])[:, 1]
    # The current population is the riskier half of the reference: churn risk must drift.
    riskier = np.zeros(len(risk), dtype=bool)
    riskier[np.argsort(risk, kind="stable")[len(risk) // 2 :]] = True
    current_path = tmp_path / "current.parquet"
    snapshot[riskier].to_parquet(current_path, index=False)
    reference_path = scenario["paths"]["reference"]
    same = run_monitor(str(reference_path), reference_path, model=nbo_model["uri"], track=False)
    moved = run_monitor(str(reference_path), current_path, model=nbo_model["uri"], track=False)
    scores = same.result.table[same.result.table["group"] == "score"]
    score_columns = set(scores["column"])
    assert "churn_risk" in score_columns
    assert {f"uplift_convert__{arm}" for arm in ("discount_10", "free_shipping", "content_reminder")} <= score_columns
    assert np.allclose(scores.loc[scores["check"] == "psi", "value"], 0.0)
    assert moved.result.value("churn_risk") == pytest.approx(numeric_psi(risk, risk[riskier]), rel=1e-9)
    assert moved.result.value("churn_risk") > DriftConfig().score_psi.alert
    assert "churn_risk" in moved.result.flagged("psi")
