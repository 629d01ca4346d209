"""A next-best-action policy learned from a campaign with a control group.

`GatedArmPolicy` sends everyone the single best action (an arm or nothing) unless a model says
another action is better for a customer *and* that claim survives cross-validation: deviations
are kept only when their out-of-fold doubly robust gain over the best constant action exceeds
`min_z` standard errors. On noisy outcomes (rare, heavy-tailed spend) this keeps the policy
from chasing noise, which is what makes per-arm argmax policies lose to "always the best arm".
The best constant action is chosen on the model's (direct-method) values: for spend, purchase
probability x amount is far less noisy than averaging raw spend, where a few large orders can
make the worse arm look better.
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from models.policy_value import dr_rewards
from models.uplift import SLearner, TLearner, make_learner
from models.uplift_base import (
    FeatureEncoder,
    PropensityInput,
    UpliftInputs,
    estimate_propensity,
    lightgbm_params,
    stratified_folds,
    validate_inputs,
)

logger = logging.getLogger(__name__)

__all__ = ["GatedArmPolicy"]

# Spend given a purchase: few rows and heavy tails, so a small, smooth model.
AMOUNT_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 3,
    "max_depth": 2,
    "min_child_samples": 50,
}


class _HurdleValueModel:
    """E[y | x, action] = P(y > 0 | x, action) x E[y | y > 0, x] for zero-inflated outcomes.

    The purchase probability uses an uplift learner's per-label outcome model; the amount given a
    purchase is one small regressor pooled over actions: the message changes whether people buy
    more than how much, and pooling keeps a few large orders from deciding between arms.
    """

    def __init__(self, learner: str, random_state: int | None, hurdle: bool) -> None:
        self.learner = learner
        self.random_state = random_state
        self.hurdle = hurdle

    def fit(self, features: pd.DataFrame, outcome: NDArray, codes: NDArray) -> _HurdleValueModel:
        self.n_labels = int(codes.max()) + 1
        target = (outcome > 0).astype(np.float64) if self.hurdle else outcome
        self.response_ = make_learner(self.learner, control=0, random_state=self.random_state)
        if not isinstance(self.response_, SLearner | TLearner):
            raise ValueError(
                f"policy value models need a learner with per-action outcomes (s, s-additive, "
                f"s-shift or t), got {self.learner!r}"
            )
        self.response_.fit(features, target, treatment=codes)
        self.amount_ = None
        if self.hurdle:
            positive = outcome > 0
            params = lightgbm_params(AMOUNT_PARAMS, self.random_state)
            self.amount_ = lgb.LGBMRegressor(**params).fit(features[positive], outcome[positive])
        return self

    def predict(self, features: pd.DataFrame) -> NDArray[np.float64]:
        """Expected outcome under every action, shape (n, n_labels), control first."""
        response = self.response_.predict_outcomes(features)
        order = [0, *self.response_.arms_]
        response = response[:, np.argsort(order)]
        if self.amount_ is None:
            return response
        amounts = np.maximum(self.amount_.predict(features), 0.0)
        return response * amounts[:, None]


class GatedArmPolicy(BaseEstimator):
    """Best constant action for everyone, with model-driven deviations only where they pay.

    Every non-control action costs `cost_per_send`. `hurdle` ("auto", True, False) models a
    non-negative, mostly-zero outcome as P(y > 0) x amount. `predict(X)` returns action labels.
    """

    def __init__(
        self,
        *,
        control: Any = "control",
        cost_per_send: float = 0.0,
        learner: str = "s-additive",
        hurdle: str | bool = "auto",
        n_folds: int = 3,
        min_z: float = 2.0,
        random_state: int | None = 0,
    ) -> None:
        self.control = control
        self.cost_per_send = cost_per_send
        self.learner = learner
        self.hurdle = hurdle
        self.n_folds = n_folds
        self.min_z = min_z
        self.random_state = random_state

    def fit(
        self,
        X: pd.DataFrame | ArrayLike,
        y: ArrayLike,
        *,
        treatment: ArrayLike,
        propensity: PropensityInput = None,
    ) -> GatedArmPolicy:
        """Learn the base action, the value model and the deviation margin from logged data."""
        if not np.isfinite(self.cost_per_send) or self.cost_per_send < 0:
            raise ValueError(f"cost_per_send must be a non-negative number, got {self.cost_per_send}")
        self.encoder_ = FeatureEncoder.fit(X)
        inputs = validate_inputs(
            X, y, treatment, control=self.control, outcome="auto", propensity=propensity,
            encoder=self.encoder_,
        )
        self.labels_ = inputs.labels
        self.hurdle_ = self._resolve_hurdle(inputs.outcome)
        self.costs_ = np.array([0.0] + [float(self.cost_per_send)] * (len(self.labels_) - 1))
        probability = self._logged_propensity(inputs)
        out_of_fold = self._out_of_fold_values(inputs)
        rewards = dr_rewards(
            inputs.outcome,
            inputs.codes,
            probability,
            pd.DataFrame(out_of_fold, columns=range(len(self.labels_))),
            action_cost=dict(enumerate(self.costs_)),
        ).to_numpy()
        self.base_code_ = int(np.argmax((out_of_fold - self.costs_).mean(axis=0)))
        self.base_action_ = self.labels_[self.base_code_]
        self.margin_, self.selection_ = self._choose_margin(out_of_fold - self.costs_, rewards)
        self.value_model_ = _HurdleValueModel(self.learner, self.random_state, self.hurdle_).fit(
            inputs.features, inputs.outcome, inputs.codes
        )
        logger.info(
            "policy: base action %r, deviation margin %s", self.base_action_, self.margin_
        )
        return self

    def _resolve_hurdle(self, outcome: NDArray) -> bool:
        if self.hurdle not in ("auto", True, False):
            raise ValueError(f"hurdle must be 'auto', True or False, got {self.hurdle!r}")
        is_binary = bool(np.isin(outcome, [0.0, 1.0]).all())
        if self.hurdle == "auto":
            return (not is_binary) and bool((outcome >= 0).all()) and float((outcome == 0).mean()) >= 0.5
        if self.hurdle and (outcome < 0).any():
            raise ValueError("hurdle=True needs a non-negative outcome (e.g. spend)")
        return bool(self.hurdle)

    def _logged_propensity(self, inputs: UpliftInputs) -> NDArray[np.float64]:
        if inputs.assigned_propensity is not None:
            return inputs.assigned_propensity
        folds = stratified_folds(inputs.codes, self.n_folds, self.random_state)
        matrix, _ = estimate_propensity(
            inputs.features,
            inputs.codes,
            len(inputs.labels),
            params=lightgbm_params({"n_estimators": 50, "learning_rate": 0.1}, self.random_state),
            folds=folds,
            clip=0.01,
        )
        return matrix[np.arange(len(inputs.codes)), inputs.codes]

    def _out_of_fold_values(self, inputs: UpliftInputs) -> NDArray[np.float64]:
        """Expected outcome under every action for every row, from models not fitted on that row."""
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        values = np.zeros((len(inputs.codes), len(inputs.labels)))
        splitter = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
        for train_rows, test_rows in splitter.split(inputs.features, inputs.codes):
            model = _HurdleValueModel(self.learner, self.random_state, self.hurdle_).fit(
                inputs.features.iloc[train_rows], inputs.outcome[train_rows], inputs.codes[train_rows]
            )
            values[test_rows] = model.predict(inputs.features.iloc[test_rows])
        return values

    def _choose_margin(
        self, net_values: NDArray[np.float64], rewards: NDArray[np.float64]
    ) -> tuple[float, pd.DataFrame]:
        """The deviation margin with the best out-of-fold DR gain, or inf when none is significant."""
        gain, best = _gain_over(net_values, self.base_code_)
        positive = gain[gain > 0]
        margins = np.unique(np.quantile(positive, [0.0, 0.25, 0.5, 0.75, 0.9])) if len(positive) else []
        rows = np.arange(len(rewards))
        records = []
        for margin in margins:
            chosen = np.where(gain > margin, best, self.base_code_)
            difference = rewards[rows, chosen] - rewards[:, self.base_code_]
            std_error = difference.std(ddof=1) / np.sqrt(len(difference))
            records.append(
                {
                    "margin": float(margin),
                    "deviation_share": float((chosen != self.base_code_).mean()),
                    "gain": float(difference.mean()),
                    "std_error": float(std_error),
                }
            )
        selection = pd.DataFrame(records, columns=["margin", "deviation_share", "gain", "std_error"])
        if selection.empty:
            return float("inf"), selection
        best_row = selection.loc[selection["gain"].idxmax()]
        if best_row["gain"] > self.min_z * best_row["std_error"]:
            return float(best_row["margin"]), selection
        return float("inf"), selection

    def predict_values(self, X: pd.DataFrame | ArrayLike) -> pd.DataFrame:
        """Estimated outcome net of cost under every action (one column per label)."""
        check_is_fitted(self, "value_model_")
        values = self.value_model_.predict(self.encoder_.transform(X)) - self.costs_
        return pd.DataFrame(values, columns=[str(label) for label in self.labels_])

    def predict(self, X: pd.DataFrame | ArrayLike) -> NDArray[Any]:
        """The chosen action label for every row."""
        check_is_fitted(self, "value_model_")
        net_values = self.value_model_.predict(self.encoder_.transform(X)) - self.costs_
        gain, best = _gain_over(net_values, self.base_code_)
        codes = np.where(gain > self.margin_, best, self.base_code_)
        return np.asarray(self.labels_, dtype=object)[codes]


def _gain_over(net_values: NDArray[np.float64], base_code: int) -> tuple[NDArray, NDArray]:
    """Each row's best action and its estimated gain over the base action."""
    best = np.argmax(net_values, axis=1)
    gain = net_values[np.arange(len(net_values)), best] - net_values[:, base_code]
    return gain, best
