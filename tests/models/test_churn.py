"""The churn estimator on synthetic stacked snapshots: time split, learning, calibration, SHAP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from models.churn import ChurnClassifier, RecencyBaseline, held_out_customers, time_split
from models.classification_metrics import expected_calibration_error

DATES = pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01"])


def stacked(n_customers: int = 800, dates=DATES, drift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Snapshots where churn depends on recency and a segment; `drift` shifts the log-odds per month."""
    rng = np.random.default_rng(seed)
    frames = []
    for month, as_of in enumerate(dates):
        recency = rng.exponential(40, n_customers)
        segment = rng.choice(["A", "B", "C"], n_customers)
        noise = rng.normal(size=n_customers)
        log_odds = -1.5 + 0.04 * recency + np.where(segment == "A", -1.5, 1.0) + drift * month
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": [f"c{i}" for i in range(n_customers)],
                    "as_of": as_of,
                    "recency_days": recency,
                    "segment": pd.array(segment, dtype="str"),
                    "noise": noise,
                    "label_churned": (rng.uniform(size=n_customers) < expit(log_odds)).astype(int),
                    "true_p": expit(log_odds),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


FEATURES = ["recency_days", "segment", "noise"]


def fit(frame: pd.DataFrame, **params) -> ChurnClassifier:
    return ChurnClassifier(n_estimators=300, learning_rate=0.1, **params).fit(
        frame[FEATURES], frame["label_churned"], as_of=frame["as_of"], customer_id=frame["customer_id"]
    )


def test_time_split_orders_parts_in_time_and_keeps_validation_customers_out_of_training():
    frame = stacked(200)
    split = time_split(
        frame["as_of"], customer_id=frame["customer_id"], validation_snapshots=2, calibration_snapshots=1
    )
    assert split.calibration_dates == (DATES[-1],)
    assert split.validation_dates == tuple(DATES[-3:-1])
    assert split.train_dates == tuple(DATES[:-3])
    assert frame.loc[split.train, "as_of"].max() < frame.loc[split.validation, "as_of"].min()
    assert frame.loc[split.validation, "as_of"].max() < frame.loc[split.calibration, "as_of"].min()
    train_customers = set(frame.loc[split.train, "customer_id"])
    validation_customers = set(frame.loc[split.validation, "customer_id"])
    assert train_customers and validation_customers
    assert not train_customers & validation_customers
    assert 0.1 < len(validation_customers) / 200 < 0.3


def test_customer_holdout_is_deterministic():
    ids = np.array([f"c{i}" for i in range(1000)])
    first = held_out_customers(ids, 0.2)
    assert np.array_equal(first, held_out_customers(ids, 0.2))
    assert np.array_equal(first[::-1], held_out_customers(ids[::-1], 0.2))


def test_learns_the_signal_and_beats_recency_alone():
    train, test = stacked(800, seed=0), stacked(800, dates=DATES[-1:], seed=1)
    model = fit(train)
    churn = model.predict_proba(test[FEATURES])[:, 1]
    assert model.predict_proba(test[FEATURES]).shape == (len(test), 2)
    assert np.allclose(model.predict_proba(test[FEATURES]).sum(axis=1), 1.0)
    model_auc = roc_auc_score(test["label_churned"], churn)
    truth_auc = roc_auc_score(test["label_churned"], test["true_p"])
    baseline = RecencyBaseline().fit(train, train["label_churned"])
    baseline_auc = roc_auc_score(test["label_churned"], baseline.predict_proba(test)[:, 1])
    assert model_auc > baseline_auc + 0.03
    assert model_auc > truth_auc - 0.03
    assert 1 <= model.best_iteration_ < 300
    assert set(model.predict(test[FEATURES])) <= {0, 1}
    assert model.feature_importance_.index[0] in ("recency_days", "segment")


def test_calibration_on_later_snapshots_follows_drift():
    """Churn rises month by month: calibrating on the latest snapshot corrects the booster's lag."""
    train = stacked(1500, drift=0.35, seed=2)
    later = stacked(1500, drift=0.35, seed=3).query("as_of == @DATES[-1]")  # fresh customers, same month
    model = fit(train)
    calibrated = model.predict_proba(later[FEATURES])[:, 1]
    raw = model.predict_uncalibrated_proba(later[FEATURES])
    assert expected_calibration_error(later["label_churned"], calibrated) < 0.04
    assert (
        expected_calibration_error(later["label_churned"], raw)
        > expected_calibration_error(later["label_churned"], calibrated) + 0.03
    )


@pytest.mark.parametrize("method", ["isotonic", "none"])
def test_other_calibration_methods(method):
    model = fit(stacked(400), calibration=method)
    churn = model.predict_proba(stacked(200, dates=DATES[-1:], seed=5)[FEATURES])[:, 1]
    assert ((churn >= 0) & (churn <= 1)).all()
    if method == "none":
        assert model.calibrator_ is None


def test_unseen_category_and_missing_values_are_scored():
    model = fit(stacked(400))
    rows = stacked(5, dates=DATES[-1:], seed=6)[FEATURES]
    rows.loc[0, "segment"] = "Z"
    rows.loc[1, "recency_days"] = np.nan
    rows.loc[2, "noise"] = np.inf
    assert np.isfinite(model.predict_proba(rows)).all()


def test_prediction_errors():
    with pytest.raises(NotFittedError):
        ChurnClassifier().predict_proba(stacked(5)[FEATURES])
    model = fit(stacked(400))
    with pytest.raises(ValueError, match="lacks 1 feature column"):
        model.predict_proba(stacked(5)[["recency_days", "segment"]])
    with pytest.raises(ValueError, match="pandas DataFrame"):
        model.predict_proba(np.zeros((3, 3)))


def test_fit_errors_name_the_problem():
    frame = stacked(300)
    two_dates = frame[frame["as_of"] <= DATES[1]]
    with pytest.raises(ValueError, match="need at least 3 snapshot dates"):
        fit(two_dates)
    few_churners = frame.copy()
    few_churners["label_churned"] = 0
    few_churners.loc[few_churners.index[:3], "label_churned"] = 1
    with pytest.raises(ValueError, match=r"the training split .* churners .* at least 10 of each"):
        fit(few_churners)
    with pytest.raises(ValueError, match="calibration must be one of"):
        fit(frame, calibration="platt")
    with pytest.raises(ValueError, match="0/1 churn labels"):
        ChurnClassifier().fit(frame[FEATURES], frame["label_churned"] * 2, as_of=frame["as_of"])
    dated = frame.assign(when=frame["as_of"])
    with pytest.raises(ValueError, match="'when' has dtype datetime64"):
        ChurnClassifier().fit(dated[[*FEATURES, "when"]], dated["label_churned"], as_of=dated["as_of"])


def test_recency_baseline_is_monotone_in_recency():
    frame = stacked(500)
    baseline = RecencyBaseline().fit(frame, frame["label_churned"])
    grid = pd.DataFrame({"recency_days": [0.0, 10.0, 100.0, np.nan]})
    churn = baseline.predict_proba(grid)[:, 1]
    assert churn[0] < churn[1] < churn[2]
    assert churn[3] >= churn[2]  # missing recency counts as the longest seen
    with pytest.raises(ValueError, match="needs the column 'recency_days'"):
        baseline.predict_proba(grid.rename(columns={"recency_days": "days"}))


def test_shap_values_add_up_to_the_calibrated_log_odds():
    from matplotlib.figure import Figure

    from models import explain

    model = fit(stacked(400))
    rows = stacked(300, dates=DATES[-1:], seed=7)[FEATURES]
    explanation = explain.churn_shap_values(model, rows, max_rows=None)
    churn = model.predict_proba(rows)[:, 1]
    reconstructed = explanation.values.sum(axis=1) + explanation.base_values
    assert np.allclose(reconstructed, logit(churn), atol=1e-6)
    drivers = explain.top_drivers(explanation, k=2)
    assert len(drivers) == 2 * len(rows)
    assert (drivers.groupby("row")["shap_value"].diff().dropna() <= 0).all()
    sampled = explain.churn_shap_values(model, rows, max_rows=50)
    assert sampled.values.shape == (50, len(FEATURES))
    figures = [
        explain.beeswarm_figure(explanation),
        explain.bar_figure(explanation),
        explain.feature_importance_figure(model.feature_importance_),
        explain.calibration_figure(np.arange(300) % 2, {"m": churn}),
        explain.roc_figure(np.arange(300) % 2, {"m": churn}),
    ]
    from matplotlib import pyplot as plt

    for figure in figures:
        assert isinstance(figure, Figure)
        assert figure.axes and figure.axes[0].has_data()
        plt.close(figure)
