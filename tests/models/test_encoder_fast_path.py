"""`FeatureEncoder.transform_array` read from a frame's blocks along a cached plan (the one-customer
hot path) gives bit for bit what the general path gives, and what `transform` (pandas) encodes.

Frames vary in what the plan depends on: block layout (consolidated, one block per column, all
object), column order and extra columns, row counts either side of the per-value level look-up,
unseen and missing levels in text, object and categorical columns, nullable numbers and booleans,
numbers sent as text. Layouts the plan cannot read must take the general path, and encoders
unpickled from older code (no caches) must work.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from models.uplift import make_learner
from models.uplift_base import MAX_LAYOUT_PLANS, PER_VALUE_LOOKUP_ROWS, FeatureEncoder, predict_outcome

SMALL = {"n_estimators": 12, "num_leaves": 5, "min_child_samples": 10}
ARMS = np.array(["control", "a", "b"], dtype=object)


def _fit_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "count": pd.array(rng.integers(0, 5, rows), dtype="Int64"),
            "visits": rng.integers(0, 50, rows),
            "flag": rng.random(rows) < 0.3,
            "opted": pd.array(rng.random(rows) < 0.5, dtype="boolean"),
            "segment": pd.array(rng.choice(["gold", "silver", "bronze"], rows), dtype="str"),
            "channel": pd.Series(rng.choice(["email", "sms"], rows), dtype=object),
            "tier": pd.Categorical(rng.choice([1, 2, 3], rows)),  # levels that are not text
            "amount": rng.gamma(2.0, 20.0, rows).round(2),
        }
    )


def _scoring_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """40 rows to score, the first ones each with something awkward."""
    rows = frame.head(40).copy()
    rows["segment"] = pd.array(["platinum", None, *rows["segment"].iloc[2:]], dtype="str")  # unseen, missing
    channel = rows["channel"].tolist()
    channel[2:6] = ["push", None, np.nan, pd.NA]  # unseen, then three kinds of missing
    rows["channel"] = pd.Series(channel, index=rows.index, dtype=object)
    rows.loc[rows.index[6], "x"] = np.nan
    rows.loc[rows.index[7], "count"] = pd.NA
    rows.loc[rows.index[8], "opted"] = pd.NA
    rows["tier"] = rows["tier"].cat.set_categories([1, 2, 3, 4])
    rows.loc[rows.index[9], "tier"] = 4  # unseen numeric level
    return rows


def _one_block_per_column(frame: pd.DataFrame) -> pd.DataFrame:
    """The same frame, reversed, with one block per column and extra columns (as the snapshot store
    builds request frames), and a non-default index."""
    result = pd.DataFrame(index=pd.Index(range(100, 100 + len(frame))))
    result["as_of"] = pd.Timestamp("2026-01-01")
    for column in reversed(frame.columns):
        values = frame[column]
        result[column] = values.to_numpy() if isinstance(values.dtype, np.dtype) else values.array
    result["note"] = pd.array(["n"] * len(frame), dtype="str")
    return result


LAYOUTS = {
    "as built": lambda rows: rows,
    "one block per column": _one_block_per_column,
    "numbers as text": lambda rows: rows.assign(amount=rows["amount"].astype(str), visits=rows["visits"].astype(str)),
    "text levels as object": lambda rows: rows.assign(segment=rows["segment"].astype(object)),
    "nullable strings": lambda rows: rows.assign(
        segment=rows["segment"].astype("string[pyarrow]"), channel=rows["channel"].astype("string[python]")
    ),
    "object blocks": lambda rows: rows.astype(object),
    "one object block": lambda rows: pd.DataFrame(  # text columns first: each must be read from its own row
        rows[sorted(rows.columns, key=lambda column: column not in ("channel", "segment"))].to_numpy(dtype=object),
        columns=sorted(rows.columns, key=lambda column: column not in ("channel", "segment")),
        dtype=object,
    ),
}


def _from_transform(encoder: FeatureEncoder, frame: pd.DataFrame) -> np.ndarray:
    """The pandas encoding turned into the matrix LightGBM builds from it: level codes, NaN for -1."""
    encoded = encoder.transform(frame)
    columns = []
    for column in encoder.columns:
        if column in encoder.categories:
            codes = encoded[column].cat.codes.to_numpy(dtype=np.float64)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(encoded[column].to_numpy(dtype=np.float64))
    return np.column_stack(columns)


def _general_path(encoder: FeatureEncoder, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    with monkeypatch.context() as patch:
        patch.setattr(FeatureEncoder, "_transform_by_layout", lambda self, frame: None)
        return encoder.transform_array(frame)


def _assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(actual.view(np.uint64), expected.view(np.uint64))


@pytest.fixture(scope="module")
def fit_frame() -> pd.DataFrame:
    return _fit_frame(600, seed=11)


@pytest.fixture(scope="module")
def encoder(fit_frame) -> FeatureEncoder:
    return FeatureEncoder.fit(fit_frame)


def test_the_fixture_covers_every_kind_of_column(encoder):
    assert sorted(encoder.categories) == ["channel", "segment", "tier"]
    assert encoder.categories["tier"] == [1, 2, 3]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [1, PER_VALUE_LOOKUP_ROWS, PER_VALUE_LOOKUP_ROWS + 1, 40])
def test_the_plan_encodes_exactly_as_the_general_path_and_transform(encoder, fit_frame, monkeypatch, layout, size):
    frame = LAYOUTS[layout](_scoring_rows(fit_frame).head(size))
    assert encoder._transform_by_layout(frame) is not None  # the plan is used, not the fallback
    fast = encoder.transform_array(frame)
    _assert_same_bits(fast, _general_path(encoder, frame, monkeypatch))
    np.testing.assert_array_equal(fast, _from_transform(encoder, frame))
    _assert_same_bits(encoder.transform_array(frame), fast)  # the cached plan gives it again


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_single_row_encodes_exactly(encoder, fit_frame, monkeypatch, layout):
    rows = LAYOUTS[layout](_scoring_rows(fit_frame).head(12))
    for position in range(len(rows)):
        one = rows.iloc[[position]]
        fast = encoder.transform_array(one)
        _assert_same_bits(fast, _general_path(encoder, one, monkeypatch))
        np.testing.assert_array_equal(fast, _from_transform(encoder, one))


def test_unseen_and_missing_levels_are_nan(encoder, fit_frame):
    rows = _scoring_rows(fit_frame)
    array = encoder.transform_array(rows.head(12))
    segment, channel, tier = (encoder.columns.index(name) for name in ("segment", "channel", "tier"))
    assert np.isnan(array[[0, 1], segment]).all()
    assert np.isnan(array[2:6, channel]).all()
    assert np.isnan(array[9, tier])
    assert array[10, segment] == encoder.categories["segment"].index(rows["segment"].iloc[10])


@pytest.mark.parametrize("layout", ["as built", "nullable strings", "one object block"])
def test_one_row_text_levels_are_matched_without_pandas_look_up(encoder, fit_frame, monkeypatch, layout):
    rows = LAYOUTS[layout](_scoring_rows(fit_frame).head(8))
    encoder.transform_array(rows.iloc[[0]])  # plan and level caches built
    look_ups = []
    get_indexer_for = pd.Index.get_indexer_for

    def counted(index: pd.Index, target: object) -> np.ndarray:
        look_ups.append(target)
        return get_indexer_for(index, target)

    monkeypatch.setattr(pd.Index, "get_indexer_for", counted)
    for position in range(len(rows)):  # unseen, missing (None, NaN, pd.NA) and known levels
        encoder.transform_array(rows.iloc[[position]])
    assert len(look_ups) == len(rows)  # only "tier", whose levels are numbers


def test_a_value_of_another_type_in_a_text_column_is_matched_by_pandas(encoder, fit_frame, monkeypatch):
    rows = _scoring_rows(fit_frame).head(3)
    rows["channel"] = pd.Series([7, "sms", b"email"], index=rows.index, dtype=object)
    fast = encoder.transform_array(rows)
    _assert_same_bits(fast, _general_path(encoder, rows, monkeypatch))
    np.testing.assert_array_equal(fast, _from_transform(encoder, rows))


def test_unparseable_text_numbers_raise_as_before(encoder, fit_frame, monkeypatch):
    rows = _scoring_rows(fit_frame).head(1).assign(amount="12,5")
    with pytest.raises(ValueError) as general:
        _general_path(encoder, rows, monkeypatch)
    with pytest.raises(ValueError) as fast:
        encoder.transform_array(rows)
    assert str(fast.value) == str(general.value)


def test_layouts_the_plan_cannot_read_take_the_general_path(encoder, fit_frame):
    rows = _scoring_rows(fit_frame).head(2)
    duplicated = pd.concat([rows, rows[["x"]]], axis=1)
    assert encoder._transform_by_layout(duplicated) is None
    assert encoder._transform_by_layout(rows.drop(columns="x")) is None
    with pytest.raises(ValueError, match=r"lacks the feature columns \['x'\]"):
        encoder.transform_array(rows.drop(columns="x"))
    numbered = FeatureEncoder.fit(np.arange(6.0).reshape(3, 2))
    frame = pd.DataFrame(np.arange(4.0).reshape(2, 2))  # integer labels: as_frame names them "0", "1"
    assert numbered._transform_by_layout(frame) is None
    with pytest.raises(ValueError, match="lacks the feature columns"):
        numbered.transform_array(frame)


def test_many_layouts_are_encoded_exactly_with_a_bounded_number_of_plans(fit_frame, monkeypatch):
    encoder = FeatureEncoder.fit(fit_frame)
    rows = _scoring_rows(fit_frame).head(3)
    for shift in range(MAX_LAYOUT_PLANS + 5):  # each rotation of the columns is another layout
        order = list(rows.columns[shift % 9 :]) + list(rows.columns[: shift % 9]) + [f"extra_{shift}"]
        frame = rows.assign(**{f"extra_{shift}": 1.0})[order]
        _assert_same_bits(encoder.transform_array(frame), _general_path(encoder, frame, monkeypatch))
        assert len(encoder.__dict__["_layouts"][2]) <= MAX_LAYOUT_PLANS


def test_changed_levels_are_not_served_from_a_stale_plan(fit_frame):
    encoder = FeatureEncoder.fit(fit_frame)
    rows = _scoring_rows(fit_frame).head(3)
    encoder.transform_array(rows)
    encoder.categories["segment"] = ["silver", "gold"]
    encoder.categories["channel"].append("push")  # a level list changed in place
    np.testing.assert_array_equal(encoder.transform_array(rows), _from_transform(encoder, rows))
    assert encoder.transform_array(rows)[2, encoder.columns.index("channel")] == 2  # "push", now a level


def test_encoders_unpickled_from_older_code_work_and_caches_are_not_pickled(encoder, fit_frame, monkeypatch):
    rows = _scoring_rows(fit_frame).head(5)
    expected = _general_path(encoder, rows, monkeypatch)
    older = FeatureEncoder.__new__(FeatureEncoder)  # what unpickling an older encoder gives: fields only
    older.__dict__.update(columns=list(encoder.columns), categories=dict(encoder.categories))
    _assert_same_bits(older.transform_array(rows), expected)
    older.__dict__["_indexes"] = older.__dict__.pop("_indexes")  # older code pickled its index cache
    restored = pickle.loads(pickle.dumps(older))
    assert set(restored.__dict__) == {"columns", "categories"}
    assert restored == encoder
    _assert_same_bits(restored.transform_array(rows), expected)


@pytest.fixture(scope="module")
def training(fit_frame):
    rng = np.random.default_rng(5)
    treatment = rng.choice(ARMS, len(fit_frame))
    logit = fit_frame["x"] + 0.5 * (treatment == "a") * (fit_frame["segment"] == "gold") - 0.3 * (treatment == "b")
    outcome = (rng.random(len(fit_frame)) < 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))).astype(float)
    return fit_frame, outcome, treatment


@pytest.mark.parametrize("name", ["s", "s-additive", "s-shift", "t", "x", "dr"])
def test_learners_score_one_row_and_batches_from_the_plan_exactly_as_predict(training, name):
    frame, outcome, treatment = training
    learner = make_learner(name, params=SMALL, **({"n_folds": 2} if name in ("x", "dr") else {}))
    learner.fit(frame, outcome, treatment=treatment)
    assert learner._accepts_encoded()
    rows = _one_block_per_column(_scoring_rows(frame))
    for part in [rows.iloc[[position]] for position in range(10)] + [rows]:
        from_array = learner._predict_uplift(learner.encoder_.transform_array(part))
        assert from_array.shape == (len(part), 2)
        np.testing.assert_array_equal(from_array, learner.predict(part))


@pytest.mark.parametrize("propensity", [None, {"control": 0.5, "a": 0.3, "b": 0.2}])
def test_x_learner_blends_each_arm_by_its_propensity_share(training, propensity):
    frame, outcome, treatment = training
    learner = make_learner("x", params=SMALL, n_folds=2).fit(frame, outcome, treatment=treatment, propensity=propensity)
    rows = _scoring_rows(frame)
    encoded = learner.encoder_.transform(rows)
    if propensity is None:
        share = np.clip(learner.propensity_model_.predict_proba(encoded), 0.01, 0.99)
    else:
        share = np.tile([0.5, 0.3, 0.2], (len(rows), 1))
    expected = []
    for code, (model_arm, model_control) in enumerate(learner.effect_models_, start=1):
        weight = share[:, code] / (share[:, code] + share[:, 0])
        blended = weight * predict_outcome(model_control, encoded) + (1 - weight) * predict_outcome(model_arm, encoded)
        expected.append(blended)
    np.testing.assert_array_equal(learner.predict(rows), np.column_stack(expected))
    from_array = learner._predict_uplift(learner.encoder_.transform_array(rows))
    np.testing.assert_array_equal(from_array, learner.predict(rows))
