"""Multi-arm uplift meta-learners over LightGBM: S (baseline), T, X and DR with cross-fitting.

All share `fit(X, y, *, treatment, propensity=None)` and `predict(X)` -> one uplift column per
non-control arm (`arms_`). Binary outcomes use classifiers (uplift in probability points),
continuous ones regressors. Known propensities are used as given; otherwise they are estimated
by a multinomial LightGBM, out of fold, and clipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from models.uplift_base import (
    BaseUpliftLearner,
    UpliftInputs,
    accepts_encoded,
    cross_fit_outcomes,
    estimate_propensity,
    lightgbm_params,
    make_outcome_model,
    predict_encoded,
    predict_outcome,
    stratified_folds,
)

logger = logging.getLogger(__name__)

__all__ = [
    "LEARNERS",
    "LEARNER_SPECS",
    "AveragingLearner",
    "DRLearner",
    "SLearner",
    "TLearner",
    "XLearner",
    "make_learner",
]

TREATMENT_FEATURE = "__arm_"
# Assignment is usually simple (randomised or rule-based): a short multinomial model suffices.
PROPENSITY_PARAMS: dict[str, Any] = {"n_estimators": 50, "learning_rate": 0.1}


TREATMENT_INTERACTIONS = ("full", "additive", "none")


class SLearner(BaseUpliftLearner):
    """One outcome model on the features plus one 0/1 indicator per arm; uplift = f(x, arm) - f(x, control).

    `treatment_interactions` restricts how the arm indicators may combine with the features in
    LightGBM's trees (interaction constraints), a strong prior that cuts noise:
      - "full": any combination (the classic S-learner);
      - "additive": every tree uses at most one feature, plus the arm indicators, so the model is
        additive over features on the link scale and each feature's effect may differ by arm;
      - "none": the arm shifts the link (log-odds for binary outcomes) by a constant, so
        heterogeneity comes only from the baseline (an effect is larger where the baseline rate
        is nearer 0.5).
    """

    def __init__(
        self,
        *,
        control: Any = "control",
        outcome: str = "auto",
        params: Mapping[str, Any] | None = None,
        treatment_interactions: str = "full",
        random_state: int | None = 0,
    ) -> None:
        self.control = control
        self.outcome = outcome
        self.params = params
        self.treatment_interactions = treatment_interactions
        self.random_state = random_state

    def _with_treatment(
        self, features: pd.DataFrame | NDArray[np.float64], codes: NDArray[np.int64]
    ) -> pd.DataFrame | NDArray[np.float64]:
        if isinstance(features, np.ndarray):  # encoded rows: the indicators as trailing columns
            indicators = codes[:, None] == np.arange(1, len(self.labels_))[None, :]
            return np.hstack([features, indicators.astype(np.float64)])
        frame = features.copy()
        for code in range(1, len(self.labels_)):
            frame[f"{TREATMENT_FEATURE}{code}"] = (codes == code).astype(np.float64)
        return frame

    def _constraints(self, n_features: int) -> list[list[int]] | None:
        arm_columns = list(range(n_features, n_features + len(self.labels_) - 1))
        if self.treatment_interactions == "full":
            return None
        if self.treatment_interactions == "additive":
            return [[feature, *arm_columns] for feature in range(n_features)]
        return [list(range(n_features))] + [[column] for column in arm_columns]

    def _fit_learner(self, inputs: UpliftInputs) -> None:
        if self.treatment_interactions not in TREATMENT_INTERACTIONS:
            raise ValueError(
                f"treatment_interactions must be one of {TREATMENT_INTERACTIONS}, "
                f"got {self.treatment_interactions!r}"
            )
        params = lightgbm_params(self.params, self.random_state)
        constraints = self._constraints(inputs.features.shape[1])
        if constraints is not None:
            params["interaction_constraints"] = constraints
        self.model_ = make_outcome_model(inputs.outcome_type, params)
        self.model_.fit(self._with_treatment(inputs.features, inputs.codes), inputs.outcome)
        self.shifts_ = None
        if self.treatment_interactions == "none" and _has_canonical_link(self.model_):
            self.shifts_ = self._refit_shifts(inputs)

    def _baseline_score(self, features: pd.DataFrame | NDArray[np.float64]) -> NDArray[np.float64]:
        """The link-scale score of the feature trees alone (every arm indicator at 0)."""
        control = self._with_treatment(features, np.zeros(len(features), dtype=np.int64))
        if isinstance(control, np.ndarray):
            return predict_encoded(self.model_, control, raw_score=True)
        return np.asarray(self.model_.predict(control, raw_score=True), dtype=np.float64)

    def _accepts_encoded(self) -> bool:
        return accepts_encoded(getattr(self, "model_", None), self.encoder_, len(self.labels_) - 1)

    def _refit_shifts(self, inputs: UpliftInputs) -> NDArray[np.float64]:
        """Maximum-likelihood shift of each label given the baseline score.

        Boosting learns the arms' constant shifts in shrunken steps and stops short of them, which
        leaves rankings intact but biases the effect towards zero; one exact 1-parameter fit per
        label (Newton for log-odds, the mean residual for squared error) removes that bias.
        """
        baseline = self._baseline_score(inputs.features)
        shifts = np.zeros(len(inputs.labels))
        for code in range(len(inputs.labels)):
            rows = inputs.codes == code
            base_score, outcome = baseline[rows], inputs.outcome[rows]
            if inputs.outcome_type != "binary":
                shifts[code] = float(np.mean(outcome - base_score))
                continue
            shift = 0.0
            for _ in range(50):
                probability = expit(base_score + shift)
                step = (outcome - probability).sum() / max((probability * (1 - probability)).sum(), 1e-12)
                shift += step
                if abs(step) < 1e-10:
                    break
            shifts[code] = shift
        return shifts

    def predict_outcomes(self, X: pd.DataFrame | NDArray) -> NDArray[np.float64]:
        """Expected outcome under every label (control first, then `arms_`), shape (n, 1 + n_arms)."""
        check_is_fitted(self, "model_")
        features = self.encoder_.transform(X)
        return self._outcomes(features)

    def _outcomes(self, features: pd.DataFrame) -> NDArray[np.float64]:
        n_rows = len(features)
        if getattr(self, "shifts_", None) is not None:
            scores = self._baseline_score(features)[:, None] + self.shifts_[None, :]
            return expit(scores) if self.outcome_type_ == "binary" else scores
        # Every label's copy of the rows stacked into one prediction call (trees score rows
        # independently, so the numbers are the same; one call instead of one per label).
        labels = len(self.labels_)
        if isinstance(features, np.ndarray):  # encoded rows: the copies and indicators written in place
            width = features.shape[1]
            stacked_array = np.zeros((labels * n_rows, width + labels - 1))
            for code in range(labels):
                label_rows = stacked_array[code * n_rows : (code + 1) * n_rows]
                label_rows[:, :width] = features
                if code:
                    label_rows[:, width + code - 1] = 1.0
            return predict_encoded(self.model_, stacked_array).reshape(labels, n_rows).T
        rows = np.tile(np.arange(n_rows), labels)
        stacked = features.iloc[rows].reset_index(drop=True)
        codes = np.repeat(np.arange(labels), n_rows)
        return predict_outcome(self.model_, self._with_treatment(stacked, codes)).reshape(labels, n_rows).T

    def _predict_uplift(self, features: pd.DataFrame) -> NDArray[np.float64]:
        expected = self._outcomes(features)
        return expected[:, 1:] - expected[:, [0]]


def _has_canonical_link(model: lgb.LGBMModel) -> bool:
    """Log-odds for a binary classifier or identity for squared error: shifts can be refitted."""
    objective = model.get_params().get("objective")
    if isinstance(model, lgb.LGBMClassifier):
        return objective in (None, "binary")
    return objective in (None, "regression", "l2")


class TLearner(BaseUpliftLearner):
    """One outcome model per label; uplift = mu_arm(x) - mu_control(x)."""

    def __init__(
        self,
        *,
        control: Any = "control",
        outcome: str = "auto",
        params: Mapping[str, Any] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.control = control
        self.outcome = outcome
        self.params = params
        self.random_state = random_state

    def _fit_learner(self, inputs: UpliftInputs) -> None:
        params = lightgbm_params(self.params, self.random_state)
        self.models_ = []
        for code in range(len(inputs.labels)):
            rows = inputs.codes == code
            model = make_outcome_model(inputs.outcome_type, params)
            model.fit(inputs.features[rows], inputs.outcome[rows])
            self.models_.append(model)

    def predict_outcomes(self, X: pd.DataFrame | NDArray) -> NDArray[np.float64]:
        """Expected outcome under every label (control first, then `arms_`), shape (n, 1 + n_arms)."""
        check_is_fitted(self, "models_")
        features = self.encoder_.transform(X)
        return np.column_stack([predict_outcome(model, features) for model in self.models_])

    def _predict_uplift(self, features: pd.DataFrame) -> NDArray[np.float64]:
        expected = np.column_stack([predict_outcome(model, features) for model in self.models_])
        return expected[:, 1:] - expected[:, [0]]

    def _accepts_encoded(self) -> bool:
        return all(accepts_encoded(model, self.encoder_) for model in getattr(self, "models_", [None]))


class _CrossFittedLearner(BaseUpliftLearner):
    """Shared by X and DR: out-of-fold outcome models and propensities (known or estimated)."""

    def __init__(
        self,
        *,
        control: Any = "control",
        outcome: str = "auto",
        params: Mapping[str, Any] | None = None,
        effect_params: Mapping[str, Any] | None = None,
        propensity_params: Mapping[str, Any] | None = None,
        propensity_clip: float = 0.01,
        n_folds: int = 3,
        random_state: int | None = 0,
    ) -> None:
        self.control = control
        self.outcome = outcome
        self.params = params
        self.effect_params = effect_params
        self.propensity_params = propensity_params
        self.propensity_clip = propensity_clip
        self.n_folds = n_folds
        self.random_state = random_state

    def _nuisances(self, inputs: UpliftInputs) -> tuple[NDArray, NDArray]:
        """Out-of-fold expected outcomes (n, L) and propensities (n, L), known ones as given."""
        if not 0 <= self.propensity_clip < 0.5:
            raise ValueError(f"propensity_clip must be in [0, 0.5), got {self.propensity_clip}")
        folds = stratified_folds(inputs.codes, self.n_folds, self.random_state)
        outcomes = cross_fit_outcomes(
            inputs, lightgbm_params(self.params, self.random_state), folds
        )
        self.propensity_model_ = None
        if inputs.propensity is not None:
            propensity = inputs.propensity
            self.constant_propensity_ = _constant_rows(propensity)
        else:
            params = lightgbm_params(
                {**PROPENSITY_PARAMS, **(self.propensity_params or {})}, self.random_state
            )
            propensity, self.propensity_model_ = estimate_propensity(
                inputs.features,
                inputs.codes,
                len(inputs.labels),
                params=params,
                folds=folds,
                clip=self.propensity_clip,
            )
            self.constant_propensity_ = None
            if inputs.assigned_propensity is not None:  # known for the observed label only
                rows = np.arange(len(inputs.codes))
                propensity[rows, inputs.codes] = inputs.assigned_propensity
        return outcomes, propensity

    def _effect_model(self) -> lgb.LGBMRegressor:
        params = lightgbm_params(self.effect_params or self.params, self.random_state)
        return lgb.LGBMRegressor(**params)


def _constant_rows(matrix: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """The common row when every row of the propensity matrix is the same, else None."""
    if np.allclose(matrix, matrix[0]):
        return matrix[0].copy()
    return None


class XLearner(_CrossFittedLearner):
    """X-learner (Kunzel et al. 2019), one arm against control at a time.

    Imputed effects use out-of-fold outcome models: D = y - mu_control(x) on the arm's rows and
    mu_arm(x) - y on control rows; two effect models are blended by g = e_arm / (e_arm + e_control).
    """

    def _fit_learner(self, inputs: UpliftInputs) -> None:
        outcomes, _ = self._nuisances(inputs)  # X blends with g(x), not OOF e
        if inputs.propensity is not None and self.constant_propensity_ is None:
            # per-row known propensities cannot be looked up for new rows: model them for g(x)
            params = lightgbm_params(
                {**PROPENSITY_PARAMS, **(self.propensity_params or {})}, self.random_state
            )
            self.propensity_model_ = lgb.LGBMClassifier(**params).fit(inputs.features, inputs.codes)
        self.effect_models_ = []
        for code in range(1, len(inputs.labels)):
            arm_rows = inputs.codes == code
            control_rows = inputs.codes == 0
            imputed_arm = inputs.outcome[arm_rows] - outcomes[arm_rows, 0]
            imputed_control = outcomes[control_rows, code] - inputs.outcome[control_rows]
            model_arm = self._effect_model().fit(inputs.features[arm_rows], imputed_arm)
            model_control = self._effect_model().fit(inputs.features[control_rows], imputed_control)
            self.effect_models_.append((model_arm, model_control))

    def _blend_weights(self, features: pd.DataFrame | NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """g = e_arm / (e_arm + e_control) per arm, from one propensity prediction for all arms."""
        if self.constant_propensity_ is not None:
            control = self.constant_propensity_[0]
            return [np.full(len(features), arm / (arm + control)) for arm in self.constant_propensity_[1:]]
        probabilities = np.zeros((len(features), len(self.labels_)))
        if isinstance(features, np.ndarray):
            estimated = predict_encoded(self.propensity_model_, features)
            if estimated.ndim == 1:  # two labels: the booster gives P(second class) only
                estimated = np.column_stack([1 - estimated, estimated])
        else:
            estimated = self.propensity_model_.predict_proba(features)
        probabilities[:, self.propensity_model_.classes_] = estimated
        probabilities = np.clip(probabilities, self.propensity_clip, 1 - self.propensity_clip)
        return [
            probabilities[:, code] / (probabilities[:, code] + probabilities[:, 0])
            for code in range(1, len(self.labels_))
        ]

    def _predict_uplift(self, features: pd.DataFrame) -> NDArray[np.float64]:
        columns = []
        weights = self._blend_weights(features)
        for (model_arm, model_control), weight in zip(self.effect_models_, weights, strict=True):
            columns.append(
                weight * predict_outcome(model_control, features)
                + (1 - weight) * predict_outcome(model_arm, features)
            )
        return np.column_stack(columns)

    def _accepts_encoded(self) -> bool:
        models = [model for pair in getattr(self, "effect_models_", [(None,)]) for model in pair]
        if self.constant_propensity_ is None:
            models.append(self.propensity_model_)
        return all(accepts_encoded(model, self.encoder_) for model in models)


class DRLearner(_CrossFittedLearner):
    """Doubly robust learner (Kennedy 2020): regress the AIPW pseudo-outcome on the features.

    pseudo = mu_arm - mu_control + 1[arm] (y - mu_arm) / e_arm - 1[control] (y - mu_control) /
    e_control, with out-of-fold mu and e, so no row's own outcome leaks into its nuisances.
    """

    def _fit_learner(self, inputs: UpliftInputs) -> None:
        outcomes, propensity = self._nuisances(inputs)
        self.effect_models_ = []
        for code in range(1, len(inputs.labels)):
            pseudo = dr_pseudo_outcome(inputs.outcome, inputs.codes, outcomes, propensity, code)
            self.effect_models_.append(self._effect_model().fit(inputs.features, pseudo))

    def _predict_uplift(self, features: pd.DataFrame) -> NDArray[np.float64]:
        return np.column_stack([predict_outcome(model, features) for model in self.effect_models_])

    def _accepts_encoded(self) -> bool:
        return all(accepts_encoded(model, self.encoder_) for model in getattr(self, "effect_models_", [None]))


def dr_pseudo_outcome(
    outcome: NDArray[np.float64],
    codes: NDArray[np.int64],
    expected: NDArray[np.float64],
    propensity: NDArray[np.float64],
    code: int,
) -> NDArray[np.float64]:
    """AIPW pseudo-outcome of arm `code` against control (code 0) for every row."""
    is_arm = (codes == code).astype(np.float64)
    is_control = (codes == 0).astype(np.float64)
    return (
        expected[:, code]
        - expected[:, 0]
        + is_arm * (outcome - expected[:, code]) / propensity[:, code]
        - is_control * (outcome - expected[:, 0]) / propensity[:, 0]
    )


class AveragingLearner(BaseUpliftLearner):
    """The mean of several learners' uplift estimates; averaging cuts the variance that dominates
    small uplift signals. Each member is cloned and fitted on the same data."""

    def __init__(
        self,
        learners: Sequence[BaseUpliftLearner] | None = None,
        *,
        control: Any = "control",
        outcome: str = "auto",
    ) -> None:
        self.learners = learners
        self.control = control
        self.outcome = outcome

    def fit(
        self,
        X: pd.DataFrame | NDArray,
        y: NDArray | Sequence[float],
        *,
        treatment: NDArray | Sequence[Any],
        propensity: Any = None,
    ) -> AveragingLearner:
        """Fit every member (with this learner's control and outcome) on the same data."""
        members = self.learners if self.learners is not None else default_members()
        if not members:
            raise ValueError("AveragingLearner needs at least one learner")
        self.learners_ = []
        for member in members:
            fitted = clone(member).set_params(control=self.control, outcome=self.outcome)
            fitted.fit(X, y, treatment=treatment, propensity=propensity)
            self.learners_.append(fitted)
        first = self.learners_[0]
        self.encoder_ = first.encoder_
        self.labels_, self.arms_ = first.labels_, first.arms_
        self.outcome_type_ = first.outcome_type_
        self.feature_names_in_, self.n_features_in_ = first.feature_names_in_, first.n_features_in_
        return self

    def predict(self, X: pd.DataFrame | NDArray) -> NDArray[np.float64]:
        """Mean of the members' uplift estimates, shape (n_rows, len(arms_))."""
        check_is_fitted(self, "learners_")
        return np.mean([learner.predict(X) for learner in self.learners_], axis=0)


# Depth-2 trees and more of them suit the additive S-learner: each tree then models one feature's
# shape and its change under an arm (chosen by cross-validation on training halves only).
ADDITIVE_PARAMS: dict[str, Any] = {
    "num_leaves": 4,
    "max_depth": 2,
    "n_estimators": 500,
    "learning_rate": 0.1,
}

LEARNER_SPECS: dict[str, tuple[type[BaseUpliftLearner], dict[str, Any]]] = {
    "s": (SLearner, {}),
    "s-additive": (SLearner, {"treatment_interactions": "additive", "params": ADDITIVE_PARAMS}),
    "s-shift": (SLearner, {"treatment_interactions": "none"}),
    "t": (TLearner, {}),
    "x": (XLearner, {}),
    "dr": (DRLearner, {}),
}
LEARNERS = tuple(LEARNER_SPECS)


def make_learner(name: str, **kwargs: Any) -> BaseUpliftLearner:
    """A learner by short name (s, s-additive, s-shift, t, x, dr) with constructor arguments.

    A `params` argument is merged over the variant's own LightGBM parameters.
    """
    if name not in LEARNER_SPECS:
        raise ValueError(f"unknown learner {name!r}; choose one of {', '.join(LEARNER_SPECS)}")
    cls, defaults = LEARNER_SPECS[name]
    arguments = {**defaults, **kwargs}
    if "params" in defaults and "params" in kwargs:
        arguments["params"] = {**defaults["params"], **(kwargs["params"] or {})}
    return cls(**arguments)


def default_members() -> list[BaseUpliftLearner]:
    """The default average: the three S-learner variants (full, additive, shift)."""
    return [make_learner(name) for name in ("s", "s-additive", "s-shift")]
