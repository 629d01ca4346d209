"""Churn classifiers: LightGBM on stacked point-in-time snapshots, and a recency-only baseline.

Snapshots are stacked rows (customer, as-of) whose labels come from [as-of, as-of + horizon).
The rows of one customer at nearby as-of dates share most of their history and label window, so
a model can memorise customers; validation therefore holds out whole customers *and* looks
forward in time. Probabilities are calibrated on the latest snapshots, which the booster never
saw, so the calibration map reflects how the model behaves on data later than its training data.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from models.uplift_base import FeatureEncoder, accepts_encoded, predict_encoded

logger = logging.getLogger(__name__)

CALIBRATION_METHODS = ("auto", "sigmoid", "isotonic", "none")
MIN_ROWS_PER_CLASS = 10
# "auto" uses isotonic regression only when each class has this many calibration rows; below
# that it overfits and Platt scaling is the safer choice (scikit-learn's calibration guide).
ISOTONIC_MIN_ROWS_PER_CLASS = 1000
#: Up to this many rows `_FeatureFrame.transform_array` reads the frame in one pass as objects rather
#: than selecting its numeric columns, a pandas step that costs microseconds per column whatever the rows.
OBJECT_PASS_ROWS = 64


@dataclass(frozen=True)
class SnapshotSplit:
    """Boolean row masks of a time-ordered split of stacked snapshots, and the dates in each part."""

    train: np.ndarray
    validation: np.ndarray
    calibration: np.ndarray
    train_dates: tuple[pd.Timestamp, ...]
    validation_dates: tuple[pd.Timestamp, ...]
    calibration_dates: tuple[pd.Timestamp, ...]


def held_out_customers(customer_id: ArrayLike, fraction: float) -> np.ndarray:
    """Deterministic customer holdout: True for about `fraction` of ids, the same ids every run."""
    hashed = pd.util.hash_pandas_object(pd.Series(np.asarray(customer_id)).astype(str), index=False)
    return (hashed.to_numpy() % 10_000) < round(fraction * 10_000)


def time_split(
    as_of: ArrayLike,
    *,
    customer_id: ArrayLike | None = None,
    validation_snapshots: int = 1,
    calibration_snapshots: int = 1,
    validation_customer_fraction: float = 0.2,
) -> SnapshotSplit:
    """Split stacked snapshots by as-of date: train < validation < calibration.

    The latest `calibration_snapshots` dates calibrate, the `validation_snapshots` dates before
    them drive early stopping, the rest train. With `customer_id`, validation keeps only a
    held-out group of customers and training drops them, so early stopping cannot reward
    memorising a customer seen a few weeks earlier.
    """
    as_of = pd.to_datetime(pd.Series(np.asarray(as_of))).to_numpy()
    dates = np.sort(pd.unique(as_of))
    needed = 1 + validation_snapshots + calibration_snapshots
    if validation_snapshots < 1 or calibration_snapshots < 0:
        raise ValueError(
            f"validation_snapshots must be >= 1 and calibration_snapshots >= 0, "
            f"got {validation_snapshots} and {calibration_snapshots}"
        )
    if len(dates) < needed:
        raise ValueError(
            f"need at least {needed} snapshot dates (training, {validation_snapshots} for early stopping, "
            f"{calibration_snapshots} for calibration) but the training set has {len(dates)}: "
            f"{[str(pd.Timestamp(d)) for d in dates]}; stack more snapshots (a shorter --every, or a longer history)"
        )
    calibration_dates = dates[len(dates) - calibration_snapshots :] if calibration_snapshots else dates[:0]
    remaining = dates[: len(dates) - calibration_snapshots]
    validation_dates = remaining[-validation_snapshots:]
    train_dates = remaining[:-validation_snapshots]
    train = np.isin(as_of, train_dates)
    validation = np.isin(as_of, validation_dates)
    if customer_id is not None and validation_customer_fraction > 0:
        held = held_out_customers(customer_id, validation_customer_fraction)
        train &= ~held
        validation &= held
    return SnapshotSplit(
        train=train,
        validation=validation,
        calibration=np.isin(as_of, calibration_dates),
        train_dates=tuple(pd.Timestamp(d) for d in train_dates),
        validation_dates=tuple(pd.Timestamp(d) for d in validation_dates),
        calibration_dates=tuple(pd.Timestamp(d) for d in calibration_dates),
    )


def check_enough_rows(name: str, y: np.ndarray, dates: tuple, minimum: int = MIN_ROWS_PER_CLASS) -> None:
    """Raise a ValueError naming the split when it lacks churners or non-churners to learn from."""
    positives = int(np.sum(y == 1))
    negatives = int(np.sum(y == 0))
    if positives < minimum or negatives < minimum:
        when = ", ".join(str(d.date()) for d in dates) or "none"
        raise ValueError(
            f"the {name} split (snapshots {when}) has {len(y)} rows, {positives} churners and {negatives} "
            f"non-churners; at least {minimum} of each are needed. Use more customers, more snapshots "
            "(a shorter --every) or a longer history"
        )


class _FeatureFrame:
    """Turns a snapshot frame into what LightGBM expects, remembering categories seen in fit."""

    def __init__(self, columns: list[str], categories: dict[str, list]) -> None:
        self.columns = columns
        self.categories = categories

    @classmethod
    def learn(cls, X: pd.DataFrame) -> _FeatureFrame:
        categories = {}
        for column in X.columns:
            dtype = X[column].dtype
            if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
                raise ValueError(
                    f"feature column {column!r} has dtype {dtype}; convert it to a number (e.g. days) or drop it"
                )
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                values = X[column].dropna().astype(str)
                categories[column] = sorted(values.unique().tolist())
        return cls(list(X.columns), categories)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_columns(X)
        numeric = [column for column in self.columns if column not in self.categories]
        # One block conversion for the (many) numeric columns: per-column conversion dominated
        # single-customer scoring time.
        dtypes = X.dtypes
        is_number = pd.api.types.is_numeric_dtype
        typed = [c for c in numeric if is_number(dtypes[c]) or pd.api.types.is_bool_dtype(dtypes[c])]
        block = X[typed].to_numpy(dtype="float64", na_value=np.nan, copy=True) if typed else np.empty((len(X), 0))
        block[~np.isfinite(block)] = np.nan
        out = dict(zip(typed, block.T, strict=True))
        for column in numeric:
            if column not in out:
                out[column] = _text_numbers(X[column])
        for column in self.categories:
            text = X[column].astype("string").to_numpy(dtype=object, na_value=None)
            out[column] = pd.Categorical(text, categories=self.categories[column])
        return pd.DataFrame({column: out[column] for column in self.columns}, index=X.index)

    def transform_array(self, X: pd.DataFrame) -> np.ndarray:
        """`transform(X)` as the float64 matrix LightGBM makes of it (columns in `columns` order,
        categories as level positions, NaN when missing or unseen), without building the frame,
        whose per-column pandas work dominates scoring a few rows. X's column names must be unique."""
        if isinstance(X, pd.DataFrame):
            # Typed numbers and text categories straight from the frame's blocks, as the uplift encoder
            # reads them (the same numbers); text numbers and other category values go the way below.
            encoded = self._layout_encoder()._transform_by_layout(X, typed_only=True)
            if encoded is not None:
                encoded[~np.isfinite(encoded)] = np.nan
                return encoded
        names = X.columns.tolist() if isinstance(X, pd.DataFrame) else []
        where = {column: index for index, column in enumerate(names)}
        self._check_columns(X, where)
        if len(where) != len(names):
            repeated = sorted({str(name) for name in names if names.count(name) > 1})
            raise ValueError(f"X has repeated column names {repeated[:10]}; each column must appear once")
        dtypes = dict(zip(where, X.dtypes.tolist(), strict=True))
        kinds = {dtype: _number_kind(dtype) for dtype in set(dtypes.values())}
        numeric = [column for column in self.columns if column not in self.categories]
        plain = [column for column in numeric if kinds[dtypes[column]] == "plain"]
        other = [column for column in numeric if kinds[dtypes[column]] == "other"]
        strings = [column for column in self.categories if isinstance(dtypes[column], pd.StringDtype)]
        position = self._positions()
        result = np.empty((len(X), len(self.columns)), dtype=np.float64)
        values: dict[str, np.ndarray] = {}
        if len(X) <= OBJECT_PASS_ROWS and (plain or strings):
            # One pass over the frame's blocks; numpy numbers and booleans convert to float64 from
            # Python objects exactly as they convert directly.
            objects = X.to_numpy(dtype=object)
            if plain:
                result[:, [position[c] for c in plain]] = objects[:, [where[c] for c in plain]].astype(np.float64)
            values = {column: objects[:, where[column]] for column in strings}
        else:
            other = plain + other
        if other:
            result[:, [position[c] for c in other]] = X[other].to_numpy(dtype="float64", na_value=np.nan)
        for column in numeric:
            if kinds[dtypes[column]] == "text":
                result[:, position[column]] = _text_numbers(X[column])
        result[~np.isfinite(result)] = np.nan
        levels = self._level_positions()
        for column in self.categories:
            if column in values:
                text = values[column]  # str, or a missing marker that is not a str
            elif column in strings:
                text = X[column].to_numpy(dtype=object, na_value=None)
            else:
                text = X[column].astype("string").to_numpy(dtype=object, na_value=None)
            lookup = levels[column]
            result[:, position[column]] = [
                lookup.get(value, np.nan) if isinstance(value, str) else np.nan for value in text
            ]
        return result

    def _check_columns(self, X: pd.DataFrame, present: Container | None = None) -> None:
        """Raise a ValueError unless X is a DataFrame with every feature column (in `present`, default
        X's columns)."""
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"X must be a pandas DataFrame with the feature columns, got {type(X).__name__}")
        present = X.columns if present is None else present
        missing = [column for column in self.columns if column not in present]
        if missing:
            raise ValueError(f"X lacks {len(missing)} feature column(s) the model was fitted on: {missing[:10]}")

    def _layout_encoder(self) -> FeatureEncoder:
        """A `FeatureEncoder` sharing `columns` and `categories`, for its per-layout block reading; made once
        per object (its plans follow in-place changes of both) and not pickled."""
        encoder = self.__dict__.get("_encoder_cache")
        if encoder is None or encoder.columns is not self.columns or encoder.categories is not self.categories:
            encoder = FeatureEncoder(columns=self.columns, categories=self.categories)
            self.__dict__["_encoder_cache"] = encoder
        return encoder

    def __getstate__(self) -> dict:
        """Pickle the fitted state only: the look-up caches are rebuilt on first use."""
        return {name: value for name, value in self.__dict__.items() if not name.endswith("_cache")}

    def _positions(self) -> dict:
        """Each feature column's index in `columns`, computed once per object (older pickles included)."""
        cached = self.__dict__.get("_positions_cache")
        if cached is None or cached[0] != self.columns:
            cached = (list(self.columns), {column: index for index, column in enumerate(self.columns)})
            self.__dict__["_positions_cache"] = cached
        return cached[1]

    def _level_positions(self) -> dict[str, dict[str, float]]:
        """Per categorical column, level -> its position: the codes `pd.Categorical` gives str values."""
        cached = self.__dict__.get("_levels_cache")
        if cached is None or cached[0] != self.categories:
            levels = {
                column: {level: float(index) for index, level in enumerate(values)}
                for column, values in self.categories.items()
            }
            cached = ({column: list(values) for column, values in self.categories.items()}, levels)
            self.__dict__["_levels_cache"] = cached
        return cached[1]


def _number_kind(dtype: object) -> str:
    """How `transform` converts a numeric feature of this dtype: "plain" numpy numbers and booleans,
    "other" numbers (nullable, extension) by pandas, "text" parsed with `_text_numbers`."""
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":
        return "plain"
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return "other"
    return "text"


def _text_numbers(values: pd.Series) -> np.ndarray:
    """A numeric feature that arrived as text: parsed as numbers, unparseable or non-finite -> NaN."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(copy=True)
    numbers[~np.isfinite(numbers)] = np.nan
    return numbers


class ChurnClassifier(ClassifierMixin, BaseEstimator):
    """Calibrated LightGBM probability of churn, fitted on stacked snapshots ordered in time.

    `fit(X, y, as_of=..., customer_id=...)`: the earliest snapshots train, the next
    `validation_snapshots` pick the number of trees by early stopping on held-out customers,
    the booster is refitted on training + validation rows with that many trees (`refit=True`),
    and the latest `calibration_snapshots` fit the calibration map: "sigmoid" (Platt scaling of
    the log-odds), "isotonic", "none", or "auto" = isotonic when each class has at least
    1,000 calibration rows, else sigmoid. The method used is `calibration_method_`.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        num_leaves: int = 7,
        max_depth: int = -1,
        min_child_samples: int = 100,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_alpha: float = 0.0,
        reg_lambda: float = 5.0,
        min_split_gain: float = 0.0,
        early_stopping_rounds: int = 100,
        validation_snapshots: int = 1,
        calibration_snapshots: int = 1,
        validation_customer_fraction: float = 0.2,
        refit: bool = True,
        calibration: str = "auto",
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_alpha = reg_alpha
        self.reg_lambda = reg_lambda
        self.min_split_gain = min_split_gain
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_snapshots = validation_snapshots
        self.calibration_snapshots = calibration_snapshots
        self.validation_customer_fraction = validation_customer_fraction
        self.refit = refit
        self.calibration = calibration
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _booster(self, n_estimators: int) -> lgb.LGBMClassifier:
        return lgb.LGBMClassifier(
            objective="binary",
            n_estimators=n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            max_depth=self.max_depth,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_alpha=self.reg_alpha,
            reg_lambda=self.reg_lambda,
            min_split_gain=self.min_split_gain,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        )

    def _check_params(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {CALIBRATION_METHODS}, got {self.calibration!r}")
        if not 0 <= self.validation_customer_fraction < 1:
            raise ValueError(f"validation_customer_fraction must be in [0, 1), got {self.validation_customer_fraction}")
        if self.n_estimators < 1 or self.early_stopping_rounds < 1:
            raise ValueError(
                f"n_estimators and early_stopping_rounds must be >= 1, "
                f"got {self.n_estimators} and {self.early_stopping_rounds}"
            )

    def fit(
        self,
        X: pd.DataFrame,
        y: ArrayLike,
        *,
        as_of: ArrayLike,
        customer_id: ArrayLike | None = None,
        callbacks: list | None = None,
    ) -> ChurnClassifier:
        """Fit booster, number of trees and calibration from stacked snapshots (see class doc).

        `as_of` gives each row's snapshot time; `customer_id` (recommended) enables the
        customer holdout for early stopping. `callbacks` go to LightGBM (e.g. Optuna pruning).
        """
        self._check_params()
        if not isinstance(X, pd.DataFrame):
            raise ValueError(f"X must be a pandas DataFrame of features, got {type(X).__name__}")
        y = np.asarray(y)
        if len(y) != len(X) or len(np.asarray(as_of)) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)} and as_of {len(np.asarray(as_of))}")
        labels = set(pd.unique(pd.Series(y)).tolist())
        if not labels <= {0, 1}:
            raise ValueError(f"y must be 0/1 churn labels, found values {sorted(labels, key=str)[:5]}")
        y = y.astype(int)
        calibration_snapshots = 0 if self.calibration == "none" else self.calibration_snapshots
        split = time_split(
            as_of,
            customer_id=customer_id,
            validation_snapshots=self.validation_snapshots,
            calibration_snapshots=calibration_snapshots,
            validation_customer_fraction=self.validation_customer_fraction,
        )
        check_enough_rows("training", y[split.train], split.train_dates)
        check_enough_rows("early-stopping validation", y[split.validation], split.validation_dates)
        if calibration_snapshots:
            check_enough_rows("calibration", y[split.calibration], split.calibration_dates)

        self.features_ = _FeatureFrame.learn(X)
        frame = self.features_.transform(X)
        first = self._booster(self.n_estimators)
        first.fit(
            frame[split.train],
            y[split.train],
            eval_X=frame[split.validation],
            eval_y=y[split.validation],
            eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False), *(callbacks or [])],
        )
        self.best_iteration_ = int(first.best_iteration_ or self.n_estimators)
        self.validation_log_loss_ = float(first.best_score_["valid_0"]["binary_logloss"])
        if self.refit:
            as_of_values = pd.to_datetime(pd.Series(np.asarray(as_of))).to_numpy()
            learn = np.isin(as_of_values, np.array(split.train_dates + split.validation_dates, dtype="datetime64[ns]"))
            self.booster_model_ = self._booster(self.best_iteration_).fit(frame[learn], y[learn])
        else:
            learn = split.train
            self.booster_model_ = first
        self.calibrator_ = None
        self.calibration_method_ = "none"
        if calibration_snapshots:
            raw = self._raw_margin(frame[split.calibration])
            y_calibration = y[split.calibration]
            self.calibration_method_ = self.calibration
            if self.calibration == "auto":
                smallest_class = min(int(y_calibration.sum()), int((1 - y_calibration).sum()))
                self.calibration_method_ = "isotonic" if smallest_class >= ISOTONIC_MIN_ROWS_PER_CLASS else "sigmoid"
            if self.calibration_method_ == "sigmoid":
                self.calibrator_ = LogisticRegression(C=1e6, max_iter=1000).fit(raw[:, None], y_calibration)
            else:
                self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(
                    1 / (1 + np.exp(-raw)), y_calibration
                )
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(self.features_.columns, dtype=object)
        self.n_features_in_ = len(self.features_.columns)
        self.feature_importance_ = pd.Series(
            self.booster_model_.booster_.feature_importance(importance_type="gain"),
            index=self.features_.columns,
            name="gain",
        ).sort_values(ascending=False)
        self.split_summary_ = {
            part: {
                "rows": int(mask.sum()),
                "churn_rate": float(y[mask].mean()) if mask.any() else float("nan"),
                "snapshots": [str(d) for d in dates],
            }
            for part, mask, dates in (
                ("train", learn, split.train_dates + (split.validation_dates if self.refit else ())),
                ("validation", split.validation, split.validation_dates),
                ("calibration", split.calibration, split.calibration_dates),
            )
        }
        logger.info(
            "churn model: %d trees (early stopping), %d training rows, calibration %s on %d rows",
            self.best_iteration_,
            int(learn.sum()),
            self.calibration_method_,
            int(split.calibration.sum()),
        )
        return self

    def _raw_margin(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_model_.predict(frame, raw_score=True), dtype=float)

    def prepare_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """The frame the booster sees: fitted columns, numbers as float, categories fixed at fit."""
        check_is_fitted(self, "booster_model_")
        return self.features_.transform(X)

    def booster_output(self, X: pd.DataFrame, *, pred_contrib: bool = False) -> np.ndarray:
        """The booster's raw log-odds per row, or with `pred_contrib` its TreeSHAP contributions (one
        column per feature, then the expected value). Scored from `features_.transform_array` when the
        booster was fitted on the same category levels (identical numbers, without the per-column pandas
        work that dominates a few rows), else from `prepare_features`."""
        check_is_fitted(self, "booster_model_")
        model = self.booster_model_
        kind = {"pred_contrib": True} if pred_contrib else {"raw_score": True}
        # accepts_encoded reads only `columns` and `categories`, which _FeatureFrame has too.
        if isinstance(X, pd.DataFrame) and len(X) and X.columns.is_unique and accepts_encoded(model, self.features_):
            return predict_encoded(model, self.features_.transform_array(X), **kind)
        return np.asarray(model.predict(self.prepare_features(X), **kind), dtype=float)

    def predict_uncalibrated_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(churn) straight from the booster, before calibration (for diagnostics)."""
        raw = self.booster_output(X)
        return 1 / (1 + np.exp(-raw))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated [P(stay), P(churn)] per row."""
        raw = self.booster_output(X)
        if self.calibrator_ is None:
            churn = 1 / (1 + np.exp(-raw))
        elif isinstance(self.calibrator_, LogisticRegression):
            churn = self.calibrator_.predict_proba(raw[:, None])[:, 1]
        else:
            churn = _isotonic_predict(self.calibrator_, 1 / (1 + np.exp(-raw)))
        churn = np.clip(churn, 0.0, 1.0)
        return np.column_stack([1 - churn, churn])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the calibrated churn probability is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _isotonic_predict(calibrator: IsotonicRegression, probability: np.ndarray) -> np.ndarray:
    """`calibrator.predict(probability)`: for a non-empty finite float64 vector the steps it takes after its
    input validation (clip to the fitted range, interpolate, cast back), which cost more than the booster
    when scoring one customer; anything else through `predict` itself."""
    thresholds = getattr(calibrator, "X_thresholds_", None)
    if (
        type(calibrator) is not IsotonicRegression
        or thresholds is None
        or thresholds.dtype != np.float64
        or not (isinstance(probability, np.ndarray) and probability.dtype == np.float64 and probability.ndim == 1)
        or len(probability) == 0
        or not np.isfinite(probability).all()
    ):
        return calibrator.predict(probability)
    if calibrator.out_of_bounds == "clip":
        probability = np.clip(probability, calibrator.X_min_, calibrator.X_max_)
    return calibrator.f_(probability).astype(probability.dtype)


class RecencyBaseline(ClassifierMixin, BaseEstimator):
    """Logistic regression on log(1 + days since the last order): the bar any churn model must clear."""

    def __init__(self, recency_column: str = "recency_days") -> None:
        self.recency_column = recency_column

    def _recency(self, X: pd.DataFrame) -> np.ndarray:
        if not isinstance(X, pd.DataFrame) or self.recency_column not in X.columns:
            found = list(X.columns)[:10] if isinstance(X, pd.DataFrame) else type(X).__name__
            raise ValueError(f"the recency baseline needs the column {self.recency_column!r}; got {found}")
        return pd.to_numeric(X[self.recency_column], errors="coerce").astype("float64").to_numpy()

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> RecencyBaseline:
        """Fit P(churn) = sigmoid(a + b log1p(recency)); missing recency counts as the longest seen."""
        recency = self._recency(X)
        y = np.asarray(y).astype(int)
        finite = np.isfinite(recency)
        if not finite.any():
            raise ValueError(f"column {self.recency_column!r} has no finite values to fit the baseline on")
        if len(np.unique(y)) < 2:
            raise ValueError("the recency baseline needs both churners and non-churners in y")
        self.fill_value_ = float(np.nanmax(recency[finite]))
        self.model_ = LogisticRegression(max_iter=1000).fit(self._design(recency), y)
        self.classes_ = np.array([0, 1])
        return self

    def _design(self, recency: np.ndarray) -> np.ndarray:
        filled = np.where(np.isfinite(recency), recency, getattr(self, "fill_value_", 0.0))
        return np.log1p(np.clip(filled, 0, None))[:, None]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """[P(stay), P(churn)] from recency alone."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self._design(self._recency(X)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the baseline's churn probability is at least 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
