"""The churn model's array scoring path gives exactly the numbers of the pandas path it replaces.

`ChurnClassifier.booster_output` scores `_FeatureFrame.transform_array` rows with the booster
directly; the reference here is the booster's sklearn API fed the `_FeatureFrame.transform` frame
(what every prediction used before). Inputs cover unseen and missing levels, numbers sent as text,
infinities, nullable, boolean and float32 columns, both frame layouts and both conversion routes.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import models.churn as churn_module
from models.churn import ChurnClassifier, _FeatureFrame
from models.contributions import churn_contributions

DATES = pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01"])
FEATURES = ["recency_days", "orders", "subscribed", "visits", "spend", "segment", "channel"]


def snapshots(customers: int, dates: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    """Stacked snapshots whose churn depends on recency, orders, segment and channel."""
    rng = np.random.default_rng(seed)
    parts = []
    for as_of in dates:
        recency = rng.exponential(40, customers)
        orders = rng.integers(0, 12, customers)
        segment = rng.choice(["A", "B", "C"], customers)
        channel = rng.choice(np.array(["email", "sms", "push", None], dtype=object), customers)
        log_odds = -1.0 + 0.03 * recency - 0.15 * orders + np.where(segment == "A", -1.0, 0.6)
        log_odds += np.where(channel == "sms", 0.8, 0.0)
        visits = pd.array(rng.integers(0, 30, customers), dtype="Int64")
        visits[rng.random(customers) < 0.1] = pd.NA
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": [f"c{i}" for i in range(customers)],
                    "as_of": as_of,
                    "recency_days": recency,
                    "orders": orders,
                    "subscribed": rng.random(customers) < 0.4,
                    "visits": visits,
                    "spend": rng.gamma(2.0, 30.0, customers).astype(np.float32),
                    "segment": pd.array(segment, dtype="str"),
                    "channel": pd.Series(channel, dtype=object),
                    "churned": (rng.random(customers) < 1 / (1 + np.exp(-log_odds))).astype(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def fitted(calibration: str) -> ChurnClassifier:
    train = snapshots(400, DATES, seed=0)
    model = ChurnClassifier(n_estimators=80, learning_rate=0.1, min_child_samples=20, calibration=calibration)
    return model.fit(train[FEATURES], train["churned"], as_of=train["as_of"], customer_id=train["customer_id"])


@pytest.fixture(scope="module")
def model() -> ChurnClassifier:
    return fitted("sigmoid")


def edge_rows() -> pd.DataFrame:
    """Later snapshot rows with unseen and missing levels, non-finite and extreme numbers."""
    rows = snapshots(90, DATES[-1:], seed=7)[FEATURES].reset_index(drop=True)
    rows.loc[0, "segment"] = "Z"  # unseen level
    rows.loc[1, "segment"] = None
    rows.loc[2, "segment"] = "nan"
    rows.loc[3, "channel"] = "fax"
    rows.loc[4, "channel"] = np.nan
    rows.loc[5, "channel"] = pd.NA
    rows.loc[6, "recency_days"] = np.inf
    rows.loc[7, "recency_days"] = -np.inf
    rows.loc[8, "recency_days"] = np.nan
    rows.loc[9, "visits"] = pd.NA
    rows.loc[10, "orders"] = 2**53 + 1  # not exactly a float64
    rows.loc[11, "orders"] = -(2**62) - 1
    rows.loc[12, "spend"] = np.float32(0.1)
    rows.loc[13, "spend"] = np.float32(np.inf)
    return rows


def text_rows() -> pd.DataFrame:
    """The same kind of rows with numbers sent as text and categories in other dtypes."""
    rows = edge_rows()
    recency = rows["recency_days"].round(2).astype(str).astype(object)
    recency[:6] = ["12.5", "abc", "inf", "", None, "-3"]
    rows["recency_days"] = pd.array(recency, dtype="str")
    rows["orders"] = rows["orders"].astype(object)
    rows.loc[14, "orders"] = "7"
    rows["subscribed"] = rows["subscribed"].astype(object)
    rows["visits"] = rows["visits"].astype("Float64")
    rows["segment"] = rows["segment"].astype(object)
    rows.loc[15, "segment"] = 1
    rows.loc[16, "segment"] = np.nan
    rows["channel"] = rows["channel"].astype("category")
    return rows


def other_layouts(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One block per column, consolidated blocks, other column order with extra columns, other dtypes."""
    shuffled = rows[FEATURES[::-1]].assign(as_of=DATES[-1], note=pd.array(["x"] * len(rows), dtype="str"))
    unsigned = pd.to_numeric(rows["orders"]).abs().astype(np.uint64) + np.uint64(2**63)
    python_strings = rows.assign(segment=rows["segment"].astype("string"), orders=unsigned)
    return {
        "per column": pd.DataFrame({name: rows[name].array for name in rows.columns}, copy=False),
        "consolidated": rows.copy(),
        "shuffled with extra columns": shuffled,
        "python strings, unsigned": python_strings,
        "all-missing categories as numbers": rows.assign(segment=np.nan, channel=np.full(len(rows), np.nan)),
    }


def pandas_output(model: ChurnClassifier, X: pd.DataFrame, **kind: bool) -> np.ndarray:
    """What the booster gave before the array path: the sklearn API fed the `transform` frame."""
    return np.asarray(model.booster_model_.predict(model.features_.transform(X), **kind), dtype=float)


def pandas_proba(model: ChurnClassifier, X: pd.DataFrame) -> np.ndarray:
    raw = pandas_output(model, X, raw_score=True)
    if model.calibrator_ is None:
        churn = 1 / (1 + np.exp(-raw))
    elif isinstance(model.calibrator_, LogisticRegression):
        churn = model.calibrator_.predict_proba(raw[:, None])[:, 1]
    else:
        churn = model.calibrator_.predict(1 / (1 + np.exp(-raw)))
    churn = np.clip(churn, 0.0, 1.0)
    return np.column_stack([1 - churn, churn])


def assert_same_as_pandas(model: ChurnClassifier, X: pd.DataFrame) -> None:
    np.testing.assert_array_equal(model.booster_output(X), pandas_output(model, X, raw_score=True))
    np.testing.assert_array_equal(model.predict_proba(X), pandas_proba(model, X))
    np.testing.assert_array_equal(
        model.features_.transform_array(X), pandas_matrix(model.features_.transform(X), model)
    )


def pandas_matrix(frame: pd.DataFrame, model: ChurnClassifier) -> np.ndarray:
    """The matrix LightGBM builds from the `transform` frame: category codes (-1 -> NaN) and numbers."""
    levels = iter(model.booster_model_.booster_.pandas_categorical)
    columns = []
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.set_categories(next(levels)).cat.codes.to_numpy(dtype=float)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(column.to_numpy(dtype=float))
    return np.column_stack(columns)


@pytest.mark.parametrize("make_rows", [edge_rows, text_rows])
@pytest.mark.parametrize("route_rows", [10**6, 0], ids=["object pass", "column selection"])
def test_every_row_and_batch_scores_exactly_as_the_pandas_path(model, make_rows, route_rows, monkeypatch):
    monkeypatch.setattr(churn_module, "OBJECT_PASS_ROWS", route_rows)
    rows = make_rows()
    for name, X in {"as given": rows, **other_layouts(rows)}.items():
        assert_same_as_pandas(model, X)
        for row in range(0, len(X), 7):
            assert_same_as_pandas(model, X.iloc[[row]])
        assert np.isfinite(model.predict_proba(X)).all(), name


def test_batches_above_the_object_pass_and_thread_limits(model):
    rows = snapshots(2_100, DATES[-1:], seed=8)[FEATURES]  # > OBJECT_PASS_ROWS and SINGLE_THREAD_ROWS
    assert_same_as_pandas(model, rows)
    assert_same_as_pandas(model, rows.head(churn_module.OBJECT_PASS_ROWS))
    assert_same_as_pandas(model, rows.head(churn_module.OBJECT_PASS_ROWS + 1))


@pytest.mark.parametrize("calibration", ["isotonic", "none"])
def test_other_calibrations_score_exactly_as_the_pandas_path(calibration):
    model = fitted(calibration)
    for rows in (edge_rows(), text_rows()):
        np.testing.assert_array_equal(model.predict_proba(rows), pandas_proba(model, rows))
        uncalibrated = 1 / (1 + np.exp(-pandas_output(model, rows, raw_score=True)))
        np.testing.assert_array_equal(model.predict_uncalibrated_proba(rows), uncalibrated)


def test_contributions_are_exactly_those_of_the_pandas_path(model):
    slope = float(model.calibrator_.coef_[0, 0])
    for rows in (edge_rows(), text_rows(), edge_rows().iloc[[3]]):
        contributions = churn_contributions(model, rows)
        expected = pandas_output(model, rows, pred_contrib=True)[:, :-1] * slope
        np.testing.assert_array_equal(contributions.values, expected)
        assert contributions.feature_names == tuple(model.features_.transform(rows).columns)


def test_eligible_input_skips_the_frame(model, monkeypatch):
    """The array path is the one taken: building the frame would fail here."""

    def no_frame(self, X):
        raise AssertionError("transform called")

    expected = pandas_proba(model, edge_rows())
    monkeypatch.setattr(_FeatureFrame, "transform", no_frame)
    np.testing.assert_array_equal(model.predict_proba(edge_rows()), expected)
    churn_contributions(model, edge_rows().iloc[[0]])


def test_a_model_pickled_before_any_prediction_scores_the_same(model):
    """Models come from MLflow pickles written by older code: nothing new may be needed from fit."""
    fresh = fitted("sigmoid")
    assert set(vars(fresh.features_)) == {"columns", "categories"}
    loaded = pickle.loads(pickle.dumps(fresh))
    rows = text_rows()
    np.testing.assert_array_equal(loaded.predict_proba(rows), pandas_proba(model, rows))
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))


def test_levels_other_than_the_boosters_fall_back_to_the_frame(model):
    """Codes are only valid against the booster's own levels; other levels go through pandas, which
    maps them by name (reversed levels would otherwise score other categories)."""
    altered = pickle.loads(pickle.dumps(model))
    rows = edge_rows()
    altered.predict_proba(rows)  # fills the level cache with the booster's levels
    altered.features_.categories["segment"] = altered.features_.categories["segment"][::-1]
    np.testing.assert_array_equal(altered.booster_output(rows), pandas_output(altered, rows, raw_score=True))
    np.testing.assert_array_equal(altered.booster_output(rows), model.booster_output(rows))
    encoded = altered.features_.transform_array(rows)  # the level cache follows the new levels
    segment = FEATURES.index("segment")
    np.testing.assert_array_equal(encoded[:, segment], 2 - model.features_.transform_array(rows)[:, segment])


def test_input_errors_are_unchanged(model):
    rows = edge_rows()
    with pytest.raises(ValueError, match=r"lacks 2 feature column\(s\) the model was fitted on: \['orders', 'spend'\]"):
        model.predict_proba(rows.drop(columns=["spend", "orders"]))
    with pytest.raises(ValueError, match="lacks 1 feature column"):
        model.features_.transform_array(rows.drop(columns=["segment"]))
    with pytest.raises(ValueError, match="pandas DataFrame"):
        model.predict_proba(rows.to_numpy())
    with pytest.raises(ValueError, match="non empty"):
        model.predict_proba(rows.iloc[:0])
    duplicated = pd.concat([rows, rows[["spend"]]], axis=1)  # a feature column twice: the frame path's error
    with pytest.raises(Exception) as before:
        pandas_output(model, duplicated, raw_score=True)
    with pytest.raises(type(before.value), match=re.escape(str(before.value))):
        model.predict_proba(duplicated)
    with pytest.raises(ValueError, match=r"repeated column names \['spend'\]"):
        model.features_.transform_array(duplicated)


def test_one_row_is_read_from_the_frame_blocks(model, monkeypatch):
    """Typed numbers and text categories of a few rows come straight from the blocks (the uplift encoder's
    plan), not from `DataFrame.to_numpy`; numbers sent as text still take the general path."""
    rows = edge_rows()
    layouts = other_layouts(rows)
    numbers_as_categories = layouts.pop("all-missing categories as numbers")
    singles = [layout.iloc[[row]] for layout in [rows, *layouts.values()] for row in range(0, 20, 3)]
    expected = [(pandas_proba(model, X), pandas_matrix(model.features_.transform(X), model)) for X in singles]

    def no_matrix(self, *args, **kwargs):
        raise AssertionError("DataFrame.to_numpy called")

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_numpy", no_matrix)
        for X, (proba, matrix) in zip(singles, expected, strict=True):
            np.testing.assert_array_equal(model.predict_proba(X), proba)
            np.testing.assert_array_equal(model.features_.transform_array(X), matrix)
    encoder = model.features_._layout_encoder()
    assert encoder._transform_by_layout(rows.iloc[[0]], typed_only=True) is not None
    assert encoder._transform_by_layout(text_rows().iloc[[0]], typed_only=True) is None  # numbers as text
    assert encoder._transform_by_layout(numbers_as_categories.iloc[[0]], typed_only=True) is None
    assert encoder._transform_by_layout(rows.head(20), typed_only=True) is None  # categories of many rows


def test_isotonic_calibration_skips_its_input_validation_only(monkeypatch):
    """Finite probabilities are calibrated without `IsotonicRegression.predict` (its input checks cost more
    than the booster for one customer), to the same bits, inside and outside the fitted range."""
    model = fitted("isotonic")
    calibrator = model.calibrator_
    low, high = float(calibrator.X_min_), float(calibrator.X_max_)
    probabilities = np.concatenate(
        [[0.0, low / 2, low, high, (1 + high) / 2, 1.0], np.asarray(calibrator.X_thresholds_), np.linspace(0, 1, 101)]
    )
    expected = calibrator.predict(probabilities)
    rows = pd.concat([edge_rows(), text_rows()], ignore_index=True)
    expected_proba = pandas_proba(model, rows)
    one_row = [pandas_proba(model, rows.iloc[[row]]) for row in (0, 20, 100)]

    def no_predict(self, T):
        raise AssertionError("IsotonicRegression.predict called")

    with monkeypatch.context() as patch:
        patch.setattr(type(calibrator), "predict", no_predict)
        np.testing.assert_array_equal(model.predict_proba(rows), expected_proba)
        for row, proba in zip((0, 20, 100), one_row, strict=True):
            np.testing.assert_array_equal(model.predict_proba(rows.iloc[[row]]), proba)
        fast = churn_module._isotonic_predict(calibrator, probabilities)
    with pytest.raises(ValueError):  # what scikit-learn says of non-finite input, through predict
        churn_module._isotonic_predict(calibrator, np.array([0.2, np.nan]))
    with pytest.raises(ValueError):
        churn_module._isotonic_predict(calibrator, np.array([]))
    assert fast.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(fast.view(np.uint64), expected.view(np.uint64))


def test_look_up_caches_are_not_pickled(model):
    model.predict_proba(edge_rows().iloc[[0]])  # fills them
    model.features_.transform_array(text_rows())
    assert set(vars(pickle.loads(pickle.dumps(model.features_)))) == {"columns", "categories"}
    assert {"_encoder_cache", "_positions_cache", "_levels_cache"} <= set(vars(model.features_))
