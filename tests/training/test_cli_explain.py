"""`nbo explain CUSTOMER_ID`: the service's /explain content, every option priced or removed, a PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.training.test_report_browser import build_report_world

AS_OF = pd.Timestamp("2025-09-01")


@pytest.fixture(scope="module")
def explained_world():
    """The report world, its decision input and the batch decisions at the world's end."""
    import mlflow

    from features.io import open_dataset
    from training.decide import decision_frame, load_nbo_model

    fixture, directory = build_report_world()
    mlflow.set_tracking_uri(fixture.tracking_uri)
    model = load_nbo_model(fixture.model_uri)
    frame = decision_frame(open_dataset(directory / "world"), AS_OF, model.catalog.offer_ids)
    batch = model.decisions(frame, now=AS_OF, as_of=AS_OF).table
    return fixture, directory, model, frame, batch


def test_explanation_matches_the_batch_decision_and_prices_every_option(explained_world) -> None:
    from models.policy_config import NO_MESSAGE
    from models.policy_rules import RULES
    from training.customer_explain import explain_customer, select_customer

    _, _, model, frame, batch = explained_world
    messaged = batch[(batch["offer_id"] != NO_MESSAGE) & ~batch["explored"]]["customer_id"].head(3)
    silent = batch[batch["offer_id"] == NO_MESSAGE]["customer_id"].head(2)
    for customer in [*messaged, *silent]:
        explanation = explain_customer(model, select_customer(frame, customer), now=AS_OF, as_of=AS_OF)
        expected = batch[batch["customer_id"] == customer].iloc[0]
        assert explanation.decision["offer_id"] == expected["offer_id"]
        options = explanation.options
        allowed = options[options["suppressed_by"].isna()]
        removed = options[options["suppressed_by"].notna()]
        assert set(removed["suppressed_by"]) <= set(RULES)
        assert len(options) == len(set(zip(options["offer_id"], options["channel"], strict=True)))
        if expected["offer_id"] == NO_MESSAGE:
            assert not (allowed["value"] > 0).any()
            continue
        assert expected["channel"] == explanation.decision["channel"]
        chosen = allowed[(allowed["offer_id"] == expected["offer_id"]) & (allowed["channel"] == expected["channel"])]
        assert chosen["value"].iloc[0] == pytest.approx(expected["expected_value"], rel=1e-5)
        assert chosen["value"].iloc[0] == pytest.approx(allowed["value"].max(), rel=1e-5)
        terms = chosen.iloc[0]
        rebuilt = terms["incremental_margin"] - terms["send_cost"] - terms["discount_cost"] - terms["harm"]
        assert rebuilt == pytest.approx(terms["value"], rel=1e-4, abs=1e-6)


def test_contributions_are_what_the_service_explain_returns(explained_world) -> None:
    from serving.service import load_model
    from training.customer_explain import explain_customer, select_customer

    fixture, _, model, frame, batch = explained_world
    served_model = load_model(fixture.model_uri)
    customer = batch[batch["offer_id"] == "discount_10"]["customer_id"].iloc[0]
    row = select_customer(frame, customer)
    ours = explain_customer(model, row, now=AS_OF, as_of=AS_OF, top_k=6)
    served = served_model.explain(row, 6, [ours.offer_id])[0]
    assert ours.churn_risk == pytest.approx(served["churn_risk"])
    assert [name for name, _, _ in ours.churn] == [name for name, _, _ in served["churn"]]
    np.testing.assert_allclose([shap for *_, shap in ours.churn], [shap for *_, shap in served["churn"]])
    assert [name for name, _, _ in ours.uplift] == [name for name, _, _ in served["uplift"]]
    assert ours.uplift, "the DR learner has per-arm effect trees, so uplift drivers exist"
    # The waterfall adds up: base + contributions = the churn log-odds of the customer.
    waterfall = ours.waterfall
    total = waterfall.base_values + waterfall.values.sum()
    assert 1 / (1 + np.exp(-total)) == pytest.approx(ours.churn_risk, abs=1e-6)


def test_cli_prints_the_tables_and_writes_the_png(explained_world, tmp_path, monkeypatch) -> None:
    from training.cli import app

    fixture, directory, _, _, batch = explained_world
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fixture.tracking_uri)
    customer = str(batch["customer_id"].iloc[0])
    picture = tmp_path / "why.png"
    result = CliRunner().invoke(
        app, ["explain", customer, "--data", str(directory / "world"), "--png", str(picture), "--top-k", "5"]
    )
    assert result.exit_code == 0, result.output
    assert f"Customer {customer}" in result.output
    assert "Churn risk drivers" in result.output and "Features the models read" in result.output
    assert "removed by" in result.output  # some option is always removed (e.g. lifecycle-only offers)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 30_000

    unknown = CliRunner().invoke(app, ["explain", "NOBODY", "--data", str(directory / "world")])
    assert unknown.exit_code == 2
    assert "'NOBODY' is not in the snapshot" in unknown.output


def test_report_and_explain_help_give_examples() -> None:
    from training.cli import app

    for command in ("report", "explain"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0
        assert f"Example: nbo {command}" in result.output
