"""What every uplift learner shares: input checks, feature encoding, LightGBM factories, propensities.

The learners themselves live in `models/uplift.py`. Nothing here knows about a particular
meta-learner; it turns `fit(X, y, treatment=..., propensity=...)` arguments into clean arrays
and a propensity matrix, and builds regularised LightGBM models.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from models.frame_blocks import block_layout

logger = logging.getLogger(__name__)

# Strongly regularised by default: uplift signals are small next to the outcome's noise, so few
# leaves, large leaves and shrinkage beat a flexible model (see benchmarks/RESULTS.md).
DEFAULT_LIGHTGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 150,
    "learning_rate": 0.05,
    "num_leaves": 7,
    "max_depth": 3,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "reg_lambda": 5.0,
    "min_split_gain": 0.0,
    "n_jobs": 1,
    "verbose": -1,
}

OUTCOME_TYPES = ("auto", "binary", "continuous")
PropensityInput = float | Mapping[Any, float] | ArrayLike | pd.DataFrame | None


def lightgbm_params(params: Mapping[str, Any] | None, random_state: int | None) -> dict[str, Any]:
    """Defaults overridden by `params`, with the learner's random_state unless params set one."""
    merged = {**DEFAULT_LIGHTGBM_PARAMS, **(params or {})}
    merged.setdefault("random_state", random_state)
    return merged


def make_outcome_model(outcome_type: str, params: dict[str, Any]) -> lgb.LGBMModel:
    """A LightGBM classifier for binary outcomes, a regressor for continuous ones."""
    if outcome_type == "binary":
        return lgb.LGBMClassifier(**params)
    return lgb.LGBMRegressor(**params)


#: Inputs up to this many rows are scored on one LightGBM thread: starting the thread pool costs
#: more than it saves on a few rows (deciding for one customer, or the few rows of concurrent
#: requests decided together). Above it the model's threads are used (`n_jobs`; the service sets
#: them to the machine's cores). Measured on an idle 2-core machine, the S-learner's booster:
#: 1,000 rows 3.6 ms on one thread, 1.9 ms on two; 250 rows 0.81 / 0.45 ms.
SINGLE_THREAD_ROWS = 256


def predict_outcome(model: lgb.LGBMModel, features: pd.DataFrame | NDArray[np.float64]) -> NDArray[np.float64]:
    """Expected outcome: P(y = 1) for a classifier, the prediction for a regressor.

    `features` is `FeatureEncoder.transform` output, or `transform_array` output for a model that
    `accepts_encoded` (then scored by the booster directly; the numbers are the same).
    """
    if isinstance(features, np.ndarray):
        return predict_encoded(model, features)
    if isinstance(model, lgb.LGBMClassifier):
        return model.predict_proba(features)[:, 1]
    return np.asarray(model.predict(features), dtype=np.float64)


def predict_encoded(
    model: lgb.LGBMModel, features: NDArray[np.float64], *, raw_score: bool = False, pred_contrib: bool = False
) -> NDArray:
    """What `predict_outcome` (or `model.predict(..., raw_score=True)` / `pred_contrib=True`) gives for
    the encoded rows, from the booster: P(y = 1) for a binary classifier, class probabilities (n, k)
    for a multi-class one, the prediction for a regressor; TreeSHAP contributions with `pred_contrib`.
    Skips the sklearn wrapper's input checks and pandas conversion, and uses one thread for small inputs."""
    threads = 1 if len(features) <= SINGLE_THREAD_ROWS else model._process_n_jobs(model.n_jobs)
    result = model.booster_.predict(features, raw_score=raw_score, pred_contrib=pred_contrib, num_threads=threads)
    return np.asarray(result, dtype=np.float64)


def accepts_encoded(model: Any, encoder: FeatureEncoder, extra_columns: int = 0) -> bool:
    """True when `model` is a fitted LightGBM model (built-in objective) trained on `encoder`'s
    output (plus `extra_columns` numeric columns at the end) with the same category levels, so
    scoring `encoder.transform_array` rows gives exactly what scoring `encoder.transform` rows gives."""
    if not isinstance(model, lgb.LGBMModel) or not model.__sklearn_is_fitted__() or callable(model.objective):
        return False
    if isinstance(model, lgb.LGBMClassifier) and callable(getattr(model, "_objective", None)):
        return False
    booster = model.booster_
    if booster.num_feature() != len(encoder.columns) + extra_columns:
        return False
    levels = [list(encoder.categories[column]) for column in encoder.columns if column in encoder.categories]
    return list(booster.pandas_categorical or []) == levels


@dataclass
class FeatureEncoder:
    """Remembers the training columns and category levels so predict sees the same encoding.

    Non-numeric columns (strings, objects, pandas categories) become pandas categoricals with
    the training levels; LightGBM then treats them as categorical. Unseen levels become missing.
    """

    columns: list[str]
    categories: dict[str, list[Any]]

    @classmethod
    def fit(cls, X: pd.DataFrame | ArrayLike) -> FeatureEncoder:
        frame = as_frame(X)
        if frame.shape[1] == 0:
            raise ValueError("X has no feature columns")
        categories = {}
        for column in frame.columns:
            series = frame[column]
            if isinstance(series.dtype, pd.CategoricalDtype):
                categories[column] = list(series.cat.categories)
            elif not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
                categories[column] = sorted(series.dropna().unique().tolist(), key=str)
        return cls(columns=[str(c) for c in frame.columns], categories=categories)

    def transform(self, X: pd.DataFrame | ArrayLike) -> pd.DataFrame:
        """The training encoding as a DataFrame: numbers as float64, categories as pandas categoricals."""
        numbers, categoricals = self._convert(X)
        out: dict[str, Any] = dict(zip(numbers[0], numbers[1].T, strict=True))
        out.update(categoricals)
        return pd.DataFrame({column: out[column] for column in self.columns})

    def transform_array(self, X: pd.DataFrame | ArrayLike) -> NDArray[np.float64]:
        """The same encoding as one float64 matrix (columns in `columns` order), categories as their
        level's position (NaN when missing or unseen): what LightGBM turns `transform(X)` into itself,
        built without the per-column pandas work that dominates scoring a few rows."""
        if isinstance(X, pd.DataFrame):
            encoded = self._transform_by_layout(X)
            if encoded is not None:
                return encoded
        numbers, categoricals = self._convert(X, codes=True)
        names, block = numbers
        if not categoricals:
            where = {column: index for index, column in enumerate(names)}
            order = [where[column] for column in self.columns]
            return block if order == list(range(len(order))) else np.ascontiguousarray(block[:, order])
        result = np.empty((block.shape[0], len(self.columns)), dtype=np.float64)
        position = {column: index for index, column in enumerate(self.columns)}
        result[:, [position[column] for column in names]] = block
        for column, values in categoricals.items():
            codes = values.astype(np.float64)
            codes[codes < 0] = np.nan
            result[:, position[column]] = codes
        return result

    def _transform_by_layout(self, frame: pd.DataFrame, *, typed_only: bool = False) -> NDArray[np.float64] | None:
        """`transform_array(frame)` read straight from the frame's blocks along a plan worked out once
        per column layout (every request has the same one); None when no plan applies (then the general
        path runs). Numbers are cast as `DataFrame.to_numpy` casts them, categories matched as before.
        With `typed_only` also None unless every number is typed and every category value is text or
        missing (the churn model's encoder reads the rest its own way)."""
        layout = block_layout(frame)
        if layout is None:
            return None
        manager, labels, key = layout
        blocks = manager.blocks
        plans, level_positions = self._layout_cache()
        plan = plans.get(key, _UNPLANNED)  # one look-up: another thread may clear the dict meanwhile
        if plan is _UNPLANNED:
            if len(plans) >= MAX_LAYOUT_PLANS:
                plans.clear()
            plan = plans[key] = _LayoutPlan.build(self, labels, manager, level_positions)
        rows = len(frame)
        if plan is None or (
            typed_only and (plan.text or (plan.categorical and rows > PER_VALUE_LOOKUP_ROWS) or not plan.per_value)
        ):
            return None
        result = np.empty((rows, len(self.columns)), dtype=np.float64)
        if plan.stacked_blocks:
            stack = np.concatenate([blocks[index].values for index in plan.stacked_blocks], dtype=np.float64)
            result[:, plan.stacked_targets] = stack[plan.stacked_rows].T
        for index, target in plan.extension:
            result[:, target] = blocks[index].values.to_numpy(dtype=np.float64, na_value=np.nan)
        for column, target in plan.text:  # text columns must parse as numbers, as before
            result[:, target] = pd.to_numeric(frame[column], errors="raise").astype(np.float64).to_numpy()
        for column, target, index, row, per_value in plan.categorical:
            codes = None
            if per_value and rows <= PER_VALUE_LOOKUP_ROWS:
                values = blocks[index].values
                codes = _level_codes(values[row] if values.ndim == 2 else values, level_positions[column], rows)
            if codes is None and typed_only:
                return None
            if codes is None:  # the look-up pd.Categorical does
                found = self._level_indexes()[column].get_indexer_for(frame[column].astype(object))
                codes = found.astype(np.float64)
                codes[found < 0] = np.nan
            result[:, target] = codes
        return result

    def _layout_cache(self) -> tuple[dict[tuple, _LayoutPlan | None], dict[str, dict[str, int]]]:
        """Plans per frame layout and each all-text categorical column's level -> position, kept in
        `__dict__` (encoders unpickled from older code get them on first use) and dropped when
        `columns` or `categories` change."""
        cached = self.__dict__.get("_layouts")
        if cached is None or cached[0] != self.columns or cached[1] != self.categories:
            level_positions = {
                column: {level: position for position, level in enumerate(index.tolist())}
                for column, index in self._level_indexes().items()
                if all(type(level) is str for level in index.tolist())
            }
            snapshot = {column: list(levels) for column, levels in self.categories.items()}
            cached = (list(self.columns), snapshot, {}, level_positions)
            self.__dict__["_layouts"] = cached
        return cached[2], cached[3]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fitted state only: the look-up caches are rebuilt on first use."""
        return {name: value for name, value in self.__dict__.items() if name not in ("_indexes", "_layouts")}

    def _convert(
        self, X: pd.DataFrame | ArrayLike, *, codes: bool = False
    ) -> tuple[tuple[list[str], NDArray[np.float64]], dict[str, Any]]:
        """(numeric column names, their float64 block) and the categorical columns at the training
        levels: pandas categoricals, or with `codes` their level positions (-1 when missing or unseen)."""
        frame = as_frame(X)
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"X lacks the feature columns {missing} the model was fitted with "
                f"(expected {self.columns})"
            )
        # One block conversion for the numeric columns: column-by-column conversion dominated
        # deciding for one customer (~140 columns).
        numeric = [c for c in self.columns if c not in self.categories]
        dtypes = frame.dtypes
        is_number, is_bool = pd.api.types.is_numeric_dtype, pd.api.types.is_bool_dtype
        typed = [c for c in numeric if is_number(dtypes[c]) or is_bool(dtypes[c])]
        block = frame[typed].to_numpy(dtype=np.float64, na_value=np.nan) if typed else np.empty((len(frame), 0))
        text = [c for c in numeric if c not in set(typed)]
        if text:  # text columns must parse as numbers, as before
            parsed = [pd.to_numeric(frame[c], errors="raise").astype(np.float64).to_numpy() for c in text]
            block = np.column_stack([block, *parsed])
        if codes:  # the look-up pd.Categorical does, against level indexes built once per encoder
            indexes = self._level_indexes()
            categoricals = {
                column: indexes[column].get_indexer_for(frame[column].astype(object))
                for column in self.categories
            }
        else:
            categoricals = {
                column: pd.Categorical(frame[column].astype(object), categories=levels)
                for column, levels in self.categories.items()
            }
        return ([*typed, *text], block), categoricals

    def _level_indexes(self) -> dict[str, pd.Index]:
        """Each categorical column's levels as the index `pd.CategoricalDtype` matches values against."""
        cached = self.__dict__.get("_indexes")
        if cached is None or cached[0] != self.categories:
            levels = {column: pd.CategoricalDtype(values).categories for column, values in self.categories.items()}
            cached = (dict(self.categories), levels)
            self.__dict__["_indexes"] = cached
        return cached[1]


def as_frame(X: pd.DataFrame | ArrayLike) -> pd.DataFrame:
    """A DataFrame with string column names; 2-d arrays get columns x0, x1, ..."""
    if isinstance(X, pd.DataFrame):
        frame = X.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        return frame
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"X must be a DataFrame or a 2-d array, got shape {array.shape}")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


#: Category levels of inputs up to this many rows are matched value by value in a dict: pandas'
#: vectorised look-up costs tens of microseconds per column, more than a few dict look-ups.
PER_VALUE_LOOKUP_ROWS = 16
#: Distinct frame layouts remembered per encoder (a service sees one or two).
MAX_LAYOUT_PLANS = 16
_UNPLANNED = object()


@dataclass(frozen=True)
class _LayoutPlan:
    """Where each encoder column sits in a frame's blocks (pandas' BlockManager) and where it goes."""

    stacked_blocks: tuple[int, ...]  # numpy blocks holding typed number columns, stacked in this order
    stacked_rows: NDArray[np.intp]  # row of each such column in the stack
    stacked_targets: NDArray[np.intp]  # its output column
    extension: tuple[tuple[int, int], ...]  # (block, output column): typed numbers in extension arrays
    text: tuple[tuple[str, int], ...]  # (column, output column): numbers held as text
    categorical: tuple[tuple[str, int, int, int, bool], ...]  # (column, output, block, row, per-value look-up)

    @property
    def per_value(self) -> bool:
        """True when every categorical column can be looked up value by value."""
        return all(entry[4] for entry in self.categorical)

    @classmethod
    def build(
        cls, encoder: FeatureEncoder, labels: list[Any], manager: Any, level_positions: dict[str, dict[str, int]]
    ) -> _LayoutPlan | None:
        """The plan for this layout, or None when the general path must run: non-text or repeated
        column names, missing columns (it raises), or a block kind this plan does not read."""
        if any(type(label) is not str for label in labels) or len(set(labels)) != len(labels):
            return None
        where = {label: position for position, label in enumerate(labels)}
        if any(column not in where for column in encoder.columns):
            return None
        offsets: dict[int, int] = {}  # stacked block -> its first row in the stack
        stacked = 0
        rows, targets, extension, text, categorical = [], [], [], [], []
        for target, column in enumerate(encoder.columns):
            index = int(manager.blknos[where[column]])
            row = int(manager.blklocs[where[column]])
            values, dtype = manager.blocks[index].values, manager.blocks[index].dtype
            if column in encoder.categories:
                readable = (isinstance(dtype, pd.StringDtype) and values.ndim == 1) or (
                    isinstance(values, np.ndarray) and values.dtype.kind == "O" and values.ndim == 2
                )
                categorical.append((column, target, index, row, readable and column in level_positions))
            elif not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                text.append((column, target))
            elif isinstance(values, np.ndarray) and values.ndim == 2 and dtype.kind in "biuf":
                if index not in offsets:
                    offsets[index], stacked = stacked, stacked + len(values)
                rows.append(offsets[index] + row)
                targets.append(target)
            elif not isinstance(values, np.ndarray) and values.ndim == 1:
                extension.append((index, target))
            else:
                return None
        return cls(
            tuple(offsets),
            np.asarray(rows, dtype=np.intp),
            np.asarray(targets, dtype=np.intp),
            tuple(extension),
            tuple(text),
            tuple(categorical),
        )


def _level_codes(values: Any, positions: dict[str, int], rows: int) -> NDArray[np.float64] | None:
    """Level positions of text values (NaN when missing or unseen), or None when a value is neither
    text nor missing (then pandas' look-up decides)."""
    codes = np.empty(rows, dtype=np.float64)
    for row in range(rows):
        value = values[row]
        if type(value) is str:
            codes[row] = positions.get(value, np.nan)
        elif value is None or value is pd.NA or (isinstance(value, float) and value != value):
            codes[row] = np.nan
        else:
            return None
    return codes


@dataclass
class UpliftInputs:
    """Validated training inputs: encoded features, outcome, label codes and propensities."""

    features: pd.DataFrame
    outcome: NDArray[np.float64]
    codes: NDArray[np.int64]  # index into labels; 0 is control
    labels: list[Any]  # control first, then the arms in sorted order
    outcome_type: str
    propensity: NDArray[np.float64] | None  # (n, len(labels)) when known for every label
    assigned_propensity: NDArray[np.float64] | None  # (n,) probability of the observed label


def validate_inputs(
    X: pd.DataFrame | ArrayLike,
    y: ArrayLike,
    treatment: ArrayLike,
    *,
    control: Any,
    outcome: str,
    propensity: PropensityInput,
    encoder: FeatureEncoder,
) -> UpliftInputs:
    """Check shapes, labels and values; name what is wrong and how to fix it."""
    features = encoder.transform(X)
    outcome_values = np.asarray(y, dtype=np.float64).ravel()
    treatment_values = pd.Series(np.asarray(treatment, dtype=object).ravel())
    lengths = {"X": len(features), "y": len(outcome_values), "treatment": len(treatment_values)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"X, y and treatment have different lengths: {lengths}")
    bad_outcome = ~np.isfinite(outcome_values)
    if bad_outcome.any():
        raise ValueError(
            f"y has {int(bad_outcome.sum())} NaN or infinite values (rows "
            f"{np.flatnonzero(bad_outcome)[:5].tolist()}); drop or impute them before fitting"
        )
    if treatment_values.isna().any():
        raise ValueError(f"treatment has {int(treatment_values.isna().sum())} missing labels")
    present = set(treatment_values.unique().tolist())
    if control not in present:
        raise ValueError(
            f"control label {control!r} is not among the treatment labels "
            f"{sorted(present, key=str)}; pass control=<your control label>"
        )
    arms = sorted(present - {control}, key=str)
    if not arms:
        raise ValueError(f"treatment holds only the control label {control!r}; at least one arm is needed")
    labels = [control, *arms]
    codes = treatment_values.map({label: index for index, label in enumerate(labels)}).to_numpy(np.int64)
    outcome_type = resolve_outcome_type(outcome, outcome_values)
    matrix, assigned = resolve_propensity(propensity, labels, codes)
    return UpliftInputs(features, outcome_values, codes, labels, outcome_type, matrix, assigned)


def resolve_outcome_type(outcome: str, values: NDArray[np.float64]) -> str:
    """'binary' when every outcome is 0 or 1 (under 'auto'), else 'continuous'."""
    if outcome not in OUTCOME_TYPES:
        raise ValueError(f"outcome must be one of {OUTCOME_TYPES}, got {outcome!r}")
    is_binary = bool(np.isin(values, [0.0, 1.0]).all())
    if outcome == "binary" and not is_binary:
        raise ValueError(
            f"outcome='binary' but y holds other values than 0 and 1: {np.unique(values)[:5].tolist()}"
        )
    if outcome == "auto":
        return "binary" if is_binary else "continuous"
    return outcome


def resolve_propensity(
    propensity: PropensityInput, labels: list[Any], codes: NDArray[np.int64]
) -> tuple[NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """Turn the accepted propensity forms into (matrix over labels or None, assigned probability).

    Accepted: None (estimate), a mapping label -> constant probability, a DataFrame with one
    column per label, a (n, n_labels) array in label order (control first, arms sorted), or a
    1-d array with the probability of each row's observed label.
    """
    if propensity is None:
        return None, None
    n_rows = len(codes)
    if isinstance(propensity, Mapping):
        missing = [label for label in labels if label not in propensity]
        if missing:
            raise ValueError(f"propensity mapping lacks the labels {missing}; give one per label")
        matrix = np.tile([float(propensity[label]) for label in labels], (n_rows, 1))
    elif isinstance(propensity, pd.DataFrame):
        missing = [label for label in labels if label not in propensity.columns]
        if missing:
            raise ValueError(
                f"propensity DataFrame lacks columns for the labels {missing}; it needs one per label"
            )
        matrix = propensity[labels].to_numpy(np.float64)
    else:
        array = np.asarray(propensity, dtype=np.float64)
        if array.ndim == 1:
            matrix = None
            assigned = array
        elif array.ndim == 2 and array.shape[1] == len(labels):
            matrix = array
        else:
            raise ValueError(
                f"propensity must be 1-d (probability of each row's label) or have one column per "
                f"label {labels}; got shape {array.shape}"
            )
    if matrix is not None:
        if len(matrix) != n_rows:
            raise ValueError(f"propensity has {len(matrix)} rows, the data {n_rows}")
        assigned = matrix[np.arange(n_rows), codes]
    if len(assigned) != n_rows:
        raise ValueError(f"propensity has {len(assigned)} rows, the data {n_rows}")
    bad = ~((assigned > 0) & (assigned <= 1))
    if bad.any():
        raise ValueError(
            f"propensity must be in (0, 1]; {int(bad.sum())} rows are not, e.g. "
            f"{assigned[bad][:5].tolist()}"
        )
    return matrix, assigned


def stratified_folds(codes: NDArray[np.int64], n_folds: int, random_state: int | None) -> list:
    """Cross-fitting folds stratified on the treatment label."""
    smallest = int(np.bincount(codes).min())
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if smallest < n_folds:
        raise ValueError(
            f"the smallest treatment group has {smallest} rows, fewer than n_folds={n_folds}"
        )
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros(len(codes)), codes))


def estimate_propensity(
    features: pd.DataFrame,
    codes: NDArray[np.int64],
    n_labels: int,
    *,
    params: dict[str, Any],
    folds: list,
    clip: float,
) -> tuple[NDArray[np.float64], lgb.LGBMClassifier]:
    """Out-of-fold multinomial propensities, clipped to [clip, 1 - clip], and a model on all rows."""
    out_of_fold = np.zeros((len(codes), n_labels))
    for train_rows, test_rows in folds:
        model = lgb.LGBMClassifier(**params)
        model.fit(features.iloc[train_rows], codes[train_rows])
        out_of_fold[np.ix_(test_rows, model.classes_)] = model.predict_proba(features.iloc[test_rows])
    full_model = lgb.LGBMClassifier(**params).fit(features, codes)
    return np.clip(out_of_fold, clip, 1 - clip), full_model


def cross_fit_outcomes(
    inputs: UpliftInputs, params: dict[str, Any], folds: list
) -> NDArray[np.float64]:
    """Out-of-fold expected outcome under every label for every row, shape (n, n_labels)."""
    predictions = np.zeros((len(inputs.codes), len(inputs.labels)))
    for train_rows, test_rows in folds:
        for code in range(len(inputs.labels)):
            rows = train_rows[inputs.codes[train_rows] == code]
            model = make_outcome_model(inputs.outcome_type, params)
            model.fit(inputs.features.iloc[rows], inputs.outcome[rows])
            predictions[test_rows, code] = predict_outcome(model, inputs.features.iloc[test_rows])
    return predictions


class BaseUpliftLearner(BaseEstimator):
    """Common fit/predict plumbing; subclasses implement `_fit_learner` and `_predict_uplift`.

    `predict(X)` returns an (n, n_arms) array: the estimated effect of each non-control arm
    (named in `arms_`) against control on the outcome's scale.
    """

    def fit(
        self,
        X: pd.DataFrame | ArrayLike,
        y: ArrayLike,
        *,
        treatment: ArrayLike,
        propensity: PropensityInput = None,
    ) -> BaseUpliftLearner:
        """Fit on features X, outcome y and treatment labels (control label `self.control`)."""
        self.encoder_ = FeatureEncoder.fit(X)
        inputs = validate_inputs(
            X,
            y,
            treatment,
            control=self.control,
            outcome=self.outcome,
            propensity=propensity,
            encoder=self.encoder_,
        )
        self.labels_ = inputs.labels
        self.arms_ = inputs.labels[1:]
        self.outcome_type_ = inputs.outcome_type
        self.feature_names_in_ = np.asarray(self.encoder_.columns, dtype=object)
        self.n_features_in_ = len(self.encoder_.columns)
        logger.debug(
            "fitting %s on %d rows, arms %s, %s outcome",
            type(self).__name__,
            len(inputs.codes),
            self.arms_,
            self.outcome_type_,
        )
        self._fit_learner(inputs)
        return self

    def predict(self, X: pd.DataFrame | ArrayLike) -> NDArray[np.float64]:
        """Estimated uplift of each arm over control, shape (n_rows, len(arms_))."""
        check_is_fitted(self, "arms_")
        features = self.encoder_.transform(X)
        return self._predict_uplift(features)

    def predict_frame(self, X: pd.DataFrame | ArrayLike) -> pd.DataFrame:
        """`predict` as a DataFrame with one column per arm label."""
        return pd.DataFrame(self.predict(X), columns=[str(arm) for arm in self.arms_])

    def _fit_learner(self, inputs: UpliftInputs) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_uplift(self, features: pd.DataFrame) -> NDArray[np.float64]:  # pragma: no cover
        raise NotImplementedError

    def _accepts_encoded(self) -> bool:
        """True when `_predict_uplift` may take `encoder_.transform_array` rows (same numbers)."""
        return False
