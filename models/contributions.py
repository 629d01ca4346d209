"""SHAP contributions straight from LightGBM's TreeSHAP (`pred_contrib`), for churn and uplift.

Shared by the packaged `nbo` model (reason codes) and the service's `/explain`; kept apart from
models/explain.py so the scoring path does not import matplotlib or shap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.churn import ChurnClassifier
from models.reasons import Contributions
from models.uplift_base import BaseUpliftLearner


def churn_contributions(model: ChurnClassifier, frame: pd.DataFrame) -> Contributions:
    """Per-customer SHAP contributions to churn log-odds (TreeSHAP from LightGBM itself).

    With Platt calibration they are rescaled by its slope, as in models/explain.py, so they add
    up on the scale of the reported probability's log-odds.
    """
    from sklearn.linear_model import LogisticRegression

    values = model.booster_output(frame, pred_contrib=True)[:, :-1]
    if isinstance(model.calibrator_, LogisticRegression):
        values = values * float(model.calibrator_.coef_[0, 0])
    return Contributions(values, list(model.features_.columns))


def uplift_contributions(learner: BaseUpliftLearner, frame: pd.DataFrame, arm: str) -> Contributions | None:
    """SHAP contributions to one arm's estimated uplift, when the learner has per-arm effect trees.

    Exact for the DR learner (one effect regressor per arm) and the X learner with known constant
    propensities (a fixed blend of two regressors); None for the others (S, T, averages).
    """
    effect_models = getattr(learner, "effect_models_", None)
    if effect_models is None or arm not in [str(label) for label in learner.arms_]:
        return None
    position = [str(label) for label in learner.arms_].index(arm)
    encoded = learner.encoder_.transform(frame)
    names = list(encoded.columns)
    model = effect_models[position]
    if isinstance(model, tuple):
        constant = getattr(learner, "constant_propensity_", None)
        if constant is None:
            return None
        weight = constant[position + 1] / (constant[position + 1] + constant[0])
        model_arm, model_control = model
        values = weight * model_control.predict(encoded, pred_contrib=True) + (1 - weight) * model_arm.predict(
            encoded, pred_contrib=True
        )
    else:
        values = model.predict(encoded, pred_contrib=True)
    return Contributions(np.asarray(values, dtype=float)[:, :-1], names)
