"""The encoded-array scoring path (serving's hot path) gives exactly the DataFrame path's numbers.

`FeatureEncoder.transform_array` + `predict_encoded` skip pandas and the sklearn wrapper; these
tests pin them to the plain path (`transform` + the LightGBM sklearn API) for every learner, with
text categories (unseen and missing levels at predict time), booleans and nullable integers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.uplift import make_learner
from models.uplift_base import FeatureEncoder, accepts_encoded, make_outcome_model, predict_outcome

SMALL = {"n_estimators": 15, "num_leaves": 5, "min_child_samples": 10}
ARMS = np.array(["control", "a", "b"], dtype=object)


def _data(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "count": pd.array(rng.integers(0, 5, rows), dtype="Int64"),
            "flag": rng.random(rows) < 0.3,
            "segment": pd.array(rng.choice(["gold", "silver", "bronze"], rows), dtype="str"),
            "y_text": rng.normal(size=rows),
        }
    )
    treatment = rng.choice(ARMS, rows)
    logit = frame["x"] + 0.5 * (treatment == "a") * (frame["segment"] == "gold") - 0.3 * (treatment == "b")
    outcome = (rng.random(rows) < 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))).astype(float)
    return frame, outcome, treatment


def _new_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows to score: an unseen level, a missing level, missing numbers and text digits."""
    rows = frame.head(40).copy()
    rows["segment"] = rows["segment"].astype(object)
    rows.loc[0, "segment"] = "platinum"  # unseen at fit
    rows.loc[1, "segment"] = None
    rows.loc[2, "x"] = np.nan
    rows["count"] = rows["count"].astype("Int64")
    rows.loc[3, "count"] = pd.NA
    return rows


def _reference_transform(encoder: FeatureEncoder, frame: pd.DataFrame) -> pd.DataFrame:
    """The encoding column by column, as the encoder did before the block conversion."""
    frame = frame.reset_index(drop=True)[encoder.columns].copy()
    for column in encoder.columns:
        if column in encoder.categories:
            dtype = pd.CategoricalDtype(encoder.categories[column])
            frame[column] = frame[column].astype(object).astype(dtype)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(np.float64)
    return frame


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return _data(900, seed=4)


def test_block_transform_matches_the_column_by_column_encoding(data):
    frame, _, _ = data
    encoder = FeatureEncoder.fit(frame)
    rows = _new_rows(frame)
    rows["y_text"] = rows["y_text"].round(3).astype(str)  # numbers sent as text still parse
    pd.testing.assert_frame_equal(encoder.transform(rows), _reference_transform(encoder, rows), check_exact=True)
    array = encoder.transform_array(rows)
    reference = _reference_transform(encoder, rows)
    assert np.isnan(array[[0, 1], encoder.columns.index("segment")]).all()  # unseen and missing level
    expected = reference["segment"].cat.codes.to_numpy(dtype=float)
    expected[expected < 0] = np.nan
    np.testing.assert_array_equal(array[:, encoder.columns.index("segment")], expected)
    np.testing.assert_array_equal(array[:, encoder.columns.index("y_text")], reference["y_text"].to_numpy())


@pytest.mark.parametrize("name", ["s", "s-additive", "s-shift", "t", "x", "dr"])
def test_every_learner_scores_encoded_rows_exactly_as_frames(data, name):
    frame, outcome, treatment = data
    learner = make_learner(name, params=SMALL, **({"n_folds": 2} if name in ("x", "dr") else {}))
    learner.fit(frame, outcome, treatment=treatment)
    rows = _new_rows(frame)
    assert learner._accepts_encoded()
    from_array = learner._predict_uplift(learner.encoder_.transform_array(rows))
    np.testing.assert_array_equal(from_array, learner.predict(rows))
    assert from_array.shape == (len(rows), 2)


def test_predict_encoded_matches_the_sklearn_api_for_classifiers_and_regressors(data):
    frame, outcome, _ = data
    encoder = FeatureEncoder.fit(frame)
    encoded, array = encoder.transform(frame), encoder.transform_array(frame)
    for kind, target in (("binary", outcome), ("continuous", outcome + frame["x"].to_numpy())):
        model = make_outcome_model(kind, {**SMALL, "verbose": -1}).fit(encoded, target)
        assert accepts_encoded(model, encoder)
        np.testing.assert_array_equal(predict_outcome(model, array), predict_outcome(model, encoded))


def test_models_fitted_on_other_levels_or_columns_are_not_given_arrays(data):
    frame, outcome, _ = data
    encoder = FeatureEncoder.fit(frame)
    model = make_outcome_model("binary", {**SMALL, "verbose": -1}).fit(encoder.transform(frame), outcome)
    other_levels = FeatureEncoder(encoder.columns, {"segment": ["bronze", "gold"]})
    assert not accepts_encoded(model, other_levels)
    assert not accepts_encoded(model, FeatureEncoder(encoder.columns[:-1], encoder.categories))
    assert not accepts_encoded(object(), encoder)
    assert not accepts_encoded(make_outcome_model("binary", {}), encoder)  # not fitted
