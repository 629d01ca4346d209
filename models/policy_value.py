"""Off-policy value: what a policy's mean outcome would have been, estimated from logged data.

Inverse-propensity (IPS) and doubly robust (DR) estimates of the mean outcome per customer of a
policy that picks one action per row, minus the actions' costs, with a normal-approximation
confidence interval. Logged data: the action taken, its probability, the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

logger = logging.getLogger(__name__)

__all__ = [
    "PolicyValue",
    "cross_fitted_action_outcomes",
    "doubly_robust_policy_value",
    "dr_rewards",
    "ips_policy_value",
]


@dataclass(frozen=True)
class PolicyValue:
    """An estimated policy value (mean outcome per row, net of action costs) with its interval."""

    value: float
    std_error: float
    low: float
    high: float
    confidence: float
    n_rows: int
    estimator: str

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form, for JSON output and MLflow metrics."""
        return {
            "value": self.value,
            "std_error": self.std_error,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "n_rows": self.n_rows,
            "estimator": self.estimator,
        }


def _validate(
    outcome: ArrayLike, treatment: ArrayLike, policy_action: ArrayLike, propensity: Any
) -> tuple[NDArray[np.float64], NDArray[Any], NDArray[Any], NDArray[np.float64]]:
    """Equal lengths, finite outcomes, propensities in (0, 1] of the logged action."""
    y = np.asarray(outcome, dtype=np.float64).ravel()
    taken = np.asarray(treatment, dtype=object).ravel()
    chosen = np.asarray(policy_action, dtype=object).ravel()
    lengths = {"outcome": len(y), "treatment": len(taken), "policy_action": len(chosen)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs have different lengths: {lengths}")
    if len(y) == 0:
        raise ValueError("inputs are empty")
    if not np.isfinite(y).all():
        raise ValueError(f"outcome has {int((~np.isfinite(y)).sum())} NaN or infinite values")
    probability = logged_propensity(propensity, taken)
    return y, taken, chosen, probability


def logged_propensity(propensity: Any, treatment: NDArray[Any]) -> NDArray[np.float64]:
    """Probability of each row's logged action from a scalar, a label->probability mapping, or
    a per-row array."""
    if isinstance(propensity, Mapping):
        missing = sorted({label for label in treatment if label not in propensity}, key=str)
        if missing:
            raise ValueError(f"propensity mapping lacks the logged actions {missing}")
        probability = np.array([float(propensity[label]) for label in treatment])
    elif np.ndim(propensity) == 0:
        probability = np.full(len(treatment), float(propensity))
    else:
        probability = np.asarray(propensity, dtype=np.float64).ravel()
        if len(probability) != len(treatment):
            raise ValueError(f"propensity has {len(probability)} rows, the data {len(treatment)}")
    bad = ~((probability > 0) & (probability <= 1))
    if bad.any():
        raise ValueError(
            f"propensity must be in (0, 1]; {int(bad.sum())} rows are not, e.g. "
            f"{probability[bad][:5].tolist()}"
        )
    return probability


def _action_costs(chosen: NDArray[Any], action_cost: Mapping[Any, float] | None) -> NDArray:
    if action_cost is None:
        return np.zeros(len(chosen))
    return np.array([float(action_cost.get(action, 0.0)) for action in chosen])


def _summarise(contributions: NDArray[np.float64], confidence: float, estimator: str) -> PolicyValue:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n_rows = len(contributions)
    value = float(contributions.mean())
    std_error = float(contributions.std(ddof=1) / np.sqrt(n_rows)) if n_rows > 1 else float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    return PolicyValue(
        value=value,
        std_error=std_error,
        low=value - z * std_error,
        high=value + z * std_error,
        confidence=confidence,
        n_rows=n_rows,
        estimator=estimator,
    )


def ips_policy_value(
    outcome: ArrayLike,
    treatment: ArrayLike,
    policy_action: ArrayLike,
    propensity: float | Mapping[Any, float] | ArrayLike,
    *,
    action_cost: Mapping[Any, float] | None = None,
    confidence: float = 0.95,
) -> PolicyValue:
    """IPS value: mean(1[logged = chosen] * outcome / propensity) - mean(cost of chosen action).

    Costs are known for every row (e.g. $0.10 per e-mail sent), so they are subtracted directly,
    not weighted. `propensity` is the probability of each row's logged action.
    """
    y, taken, chosen, probability = _validate(outcome, treatment, policy_action, propensity)
    matches = (taken == chosen).astype(np.float64)
    contributions = matches * y / probability - _action_costs(chosen, action_cost)
    return _summarise(contributions, confidence, "ips")


def dr_rewards(
    outcome: ArrayLike,
    treatment: ArrayLike,
    propensity: float | Mapping[Any, float] | ArrayLike,
    predicted_outcomes: pd.DataFrame,
    *,
    action_cost: Mapping[Any, float] | None = None,
) -> pd.DataFrame:
    """Doubly robust reward of every action for every row, net of cost (one column per action).

    reward(a) = mu_a(x) + 1[logged = a] (y - mu_a(x)) / propensity - cost(a), with
    `predicted_outcomes` holding mu_a(x) (ideally out of fold) in a column per action.
    """
    y = np.asarray(outcome, dtype=np.float64).ravel()
    taken = np.asarray(treatment, dtype=object).ravel()
    if len(predicted_outcomes) != len(y):
        raise ValueError(f"predicted_outcomes has {len(predicted_outcomes)} rows, the data {len(y)}")
    missing = sorted({label for label in taken if label not in predicted_outcomes.columns}, key=str)
    if missing:
        raise ValueError(f"predicted_outcomes lacks columns for the logged actions {missing}")
    probability = logged_propensity(propensity, taken)
    rewards = {}
    for action in predicted_outcomes.columns:
        mu = predicted_outcomes[action].to_numpy(np.float64)
        cost = float(action_cost.get(action, 0.0)) if action_cost else 0.0
        rewards[action] = mu + (taken == action) * (y - mu) / probability - cost
    return pd.DataFrame(rewards)


def doubly_robust_policy_value(
    outcome: ArrayLike,
    treatment: ArrayLike,
    policy_action: ArrayLike,
    propensity: float | Mapping[Any, float] | ArrayLike,
    predicted_outcomes: pd.DataFrame,
    *,
    action_cost: Mapping[Any, float] | None = None,
    confidence: float = 0.95,
) -> PolicyValue:
    """DR value: mean of the doubly robust reward of the chosen action (see `dr_rewards`).

    Unbiased when either the propensities or the outcome model are right; lower variance than
    IPS when the outcome model is good.
    """
    y, taken, chosen, probability = _validate(outcome, treatment, policy_action, propensity)
    missing = sorted(set(chosen.tolist()) - set(predicted_outcomes.columns), key=str)
    if missing:
        raise ValueError(f"predicted_outcomes lacks columns for the chosen actions {missing}")
    rewards = dr_rewards(y, taken, probability, predicted_outcomes, action_cost=action_cost)
    contributions = _pick(rewards, chosen)
    return _summarise(contributions, confidence, "doubly_robust")


def _pick(rewards: pd.DataFrame, chosen: Sequence[Any]) -> NDArray[np.float64]:
    """Each row's reward for its chosen action."""
    columns = {action: index for index, action in enumerate(rewards.columns)}
    positions = np.array([columns[action] for action in chosen])
    return rewards.to_numpy(np.float64)[np.arange(len(rewards)), positions]


def cross_fitted_action_outcomes(
    features: pd.DataFrame,
    logged_action: ArrayLike,
    outcome: ArrayLike,
    actions: Sequence[Any],
    *,
    n_folds: int = 2,
    params: Mapping[str, Any] | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """Out-of-fold mu_a(x) for every action in `actions` (one column each): the outcome model of
    the doubly robust estimate.

    One LightGBM regressor on the features plus the logged action as a categorical (an
    S-learner), fitted on all folds but one and predicting the held-out fold under every
    action, so no row's own outcome enters its prediction. Actions never logged get the
    model's prediction for an unseen category (LightGBM's missing-value branch).
    """
    import lightgbm as lgb

    from models.uplift_base import FeatureEncoder, lightgbm_params

    y = np.asarray(outcome, dtype=np.float64).ravel()
    taken = np.asarray(logged_action, dtype=object).ravel().astype(str)
    if len(features) != len(y) or len(taken) != len(y):
        raise ValueError(
            f"features ({len(features)}), logged_action ({len(taken)}) and outcome ({len(y)}) differ in length"
        )
    if n_folds < 2 or n_folds > len(y):
        raise ValueError(f"n_folds must be in [2, {len(y)}], got {n_folds}")
    labels = [str(action) for action in actions]
    encoder = FeatureEncoder.fit(features)
    encoded = encoder.transform(features).reset_index(drop=True).copy()  # consolidated blocks
    action_type = pd.CategoricalDtype(sorted(set(labels) | set(taken)))
    settings = lightgbm_params(
        {"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 50, "verbose": -1,
         **dict(params or {})},
        random_state,
    )  # fmt: skip
    fold = np.random.default_rng(random_state).permutation(len(y)) % n_folds
    predictions = np.zeros((len(y), len(labels)))
    for k in range(n_folds):
        train, test = fold != k, fold == k
        X_train = encoded[train].assign(action__=pd.Categorical(taken[train], dtype=action_type))
        model = lgb.LGBMRegressor(**settings).fit(X_train, y[train])
        for position, label in enumerate(labels):
            X_test = encoded[test].assign(action__=pd.Categorical([label] * int(test.sum()), dtype=action_type))
            predictions[test, position] = model.predict(X_test)
    low, high = float(y.min()), float(y.max())
    return pd.DataFrame(np.clip(predictions, low, high), columns=labels)
