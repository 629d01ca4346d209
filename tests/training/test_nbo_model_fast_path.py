"""`NboModel.decision_inputs` builds exactly the scored frame of the drop-and-concat recipe it replaces.

The reference here is that recipe, written out from the models' public outputs: the input without
the columns the model adds (they move to the end), then churn risk, the uplift and baseline columns
(0 for customers the rules block, when those are skipped), subscriber value and the order value with
its fallback. Inputs cover the service's one-row frames in both block layouts, a few rows with another
index, input columns the model replaces, and the whole frame with and without rule skipping.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.policy_config import BASELINE_CONVERT
from tests.training.test_nbo_model import CATALOG, trained, world  # noqa: F401 (module fixtures)
from training.nbo_model import SKIP_BLOCKED_MIN_ROWS, NboModel, _added_frame, assemble_nbo_model


@pytest.fixture(scope="module")
def nbo(trained) -> NboModel:  # noqa: F811 (the imported fixture)
    churn, uplift, frame, _ = trained
    model = assemble_nbo_model(churn, uplift, CATALOG, frame)
    model.explain = "none"
    return model


def drop_and_concat(model: NboModel, frame: pd.DataFrame, now: object | None = None) -> pd.DataFrame:
    """The scored frame as `decision_inputs` built it before: `drop` the replaced columns, `concat` the added."""
    config = model.config
    added = {config.churn_risk_column: model.churn_model.predict_proba(frame)[:, 1]}
    uplift = model.uplift_models.predict_columns(frame)
    if now is not None and len(frame) >= SKIP_BLOCKED_MIN_ROWS:
        uplift[model.blocked_by_rules(frame, now)] = 0.0
    added.update(uplift.to_dict(orient="series"))
    added[config.subscriber_value_column] = model.value.subscriber_value(frame)
    order_value = frame[config.order_value_column].to_numpy(dtype=float, na_value=np.nan)
    added[config.order_value_column] = np.where(
        np.isfinite(order_value) & (order_value > 0), order_value, model.value.fallback_order_value
    )
    replaced = [name for name in added if name in frame.columns]
    return pd.concat([frame.drop(columns=replaced), pd.DataFrame(added, index=frame.index)], axis=1)


def assert_same_frame(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert actual.columns.tolist() == expected.columns.tolist()
    assert actual.columns.dtype == expected.columns.dtype
    assert actual.dtypes.tolist() == expected.dtypes.tolist()
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)


def one_row_layouts(frame: pd.DataFrame, row: int) -> dict[str, pd.DataFrame]:
    """A customer as the service builds it (consolidated blocks) and as one block per column."""
    one = frame.iloc[[row]].reset_index(drop=True)
    return {
        "consolidated": one.copy(),
        "per column": pd.DataFrame({name: one[name].array for name in one.columns}, copy=False),
    }


@pytest.mark.parametrize("row", [0, 7, 311])
def test_one_customer_scores_exactly_as_drop_and_concat(nbo, trained, row):  # noqa: F811
    frame, end = trained[2], trained[3]
    for name, one in one_row_layouts(frame, row).items():
        scored, contributions = nbo.decision_inputs(one, end, end)
        assert contributions is None
        assert_same_frame(scored, drop_and_concat(nbo, one, end))
        assert scored.columns[-1] == nbo.config.order_value_column, name  # replaced: moved to the end


def test_replaced_input_columns_and_other_indexes(nbo, trained):  # noqa: F811
    frame = trained[2].iloc[[40, 3, 17, 9, 28]]  # not a 0..n range
    stale = frame.copy().assign(**{nbo.config.churn_risk_column: 0.5, BASELINE_CONVERT: 0.01}).set_index(
        pd.Index([5, 1, 9, 2, 8])
    )
    for rows in (frame, stale):
        scored, _ = nbo.decision_inputs(rows)
        assert_same_frame(scored, drop_and_concat(nbo, rows))
    assert (scored[BASELINE_CONVERT] != 0.01).all()  # the model's estimate, not the stale input


@pytest.mark.parametrize("skip_blocked", [True, False])
def test_the_whole_frame_scores_exactly_as_drop_and_concat(nbo, trained, skip_blocked):  # noqa: F811
    frame, end = trained[2], trained[3]
    assert len(frame) >= SKIP_BLOCKED_MIN_ROWS
    nbo.skip_blocked = skip_blocked
    try:
        scored, _ = nbo.decision_inputs(frame, end, end)
    finally:
        nbo.skip_blocked = True
    expected = drop_and_concat(nbo, frame, end if skip_blocked else None)
    assert_same_frame(scored, expected)
    uplift = [name for name in scored.columns if name.startswith("uplift_")]
    assert ((scored[uplift] == 0).all(axis=1).sum() > 0) == skip_blocked  # the skipped customers read 0


def test_predict_arrays_are_the_predict_columns(nbo, trained):  # noqa: F811
    models = nbo.uplift_models
    for rows in (trained[2].iloc[[5]], trained[2].iloc[100:400]):
        arrays = models.predict_arrays(rows)
        columns = models.predict_columns(rows)
        assert list(arrays) == columns.columns.tolist()
        for name, values in arrays.items():
            assert isinstance(values, np.ndarray) and values.dtype == np.float64 and values.shape == (len(rows),)
            np.testing.assert_array_equal(values.view(np.uint64), columns[name].to_numpy().view(np.uint64))
        pd.testing.assert_index_equal(columns.index, rows.index)


def test_one_customer_decides_the_same_from_either_layout(nbo, trained):  # noqa: F811
    """Consolidated frames skip the private copy; one block per column still gets it: same decisions."""
    frame, end = trained[2], trained[3]
    for row in (0, 7, 311):
        layouts = one_row_layouts(frame, row).values()
        tables = [nbo.predict(None, one, params={"now": end.isoformat()}) for one in layouts]
        pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
        batch = nbo.predict(None, frame.iloc[[row, row + 1]], params={"now": end.isoformat()})
        pd.testing.assert_frame_equal(tables[0], batch.iloc[[0]], check_exact=True)


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_added_columns_frame_is_the_constructors(rows):
    """Float64 vectors are stacked into one block directly; anything else keeps its dtype through the constructor."""
    index = pd.RangeIndex(10, 10 + rows)
    rng = np.random.default_rng(rows)
    floats = {"churn_risk": rng.random(rows), "uplift_convert__a": rng.random((rows, 2))[:, 1], "value": np.ones(rows)}
    series = pd.Series(rng.random(rows), index=index)
    mixed = {**floats, "single": rng.random(rows).astype(np.float32), "series": series}
    for columns in (floats, mixed):
        built, expected = _added_frame(columns, index), pd.DataFrame(columns, index=index)
        assert_same_frame(built, expected)
        assert len(built._mgr.blocks) == len(expected._mgr.blocks)
    assert _added_frame(mixed, index).dtypes["single"] == np.float32
