"""Golden check of the scoring hot path on the serving fixture's model.

The packaged model scores uplift from encoded float matrices straight through LightGBM's booster
(`UpliftModels.scores_encoded_arrays`); the plain path encodes pandas frames and goes through the
sklearn API. Every decision column must be the same, for one customer and for a batch, for each
`explain` mode (the uplift drivers read the same encoder).
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from tests.serving.model_fixture import ServingFixture

NOW = "2025-09-02T09:30:00"


@pytest.fixture(scope="module")
def models(serving_fixture: ServingFixture):
    import mlflow

    mlflow.set_tracking_uri(serving_fixture.tracking_uri)
    fast = mlflow.pyfunc.load_model(serving_fixture.model_uri).unwrap_python_model()
    plain = copy.deepcopy(fast)
    plain.uplift_models.__dict__["_scores_encoded_arrays"] = False  # force the pandas/sklearn path
    assert fast.uplift_models.scores_encoded_arrays()  # else this test compares a path with itself
    return fast, plain


@pytest.mark.parametrize("explain", ["none", "messaged", "all"])
def test_fast_path_decides_exactly_as_the_plain_path(models, serving_fixture, explain):
    fast, plain = models
    fast.explain = plain.explain = explain
    snapshot = serving_fixture.snapshot.reset_index(drop=True)
    batch = [model.predict(None, snapshot, params={"now": NOW}) for model in (fast, plain)]
    pd.testing.assert_frame_equal(batch[0], batch[1], check_exact=True)
    assert (batch[0]["offer_id"] != "no_message").any()  # there are decisions to compare
    for position in range(0, len(snapshot), max(1, len(snapshot) // 15)):
        row = snapshot.iloc[[position]]
        one = [model.predict(None, row, params={"now": NOW}) for model in (fast, plain)]
        pd.testing.assert_frame_equal(one[0], one[1], check_exact=True)
        pd.testing.assert_frame_equal(one[0], batch[0].iloc[[position]].reset_index(drop=True), check_exact=True)
