"""Choose an uplift learner per arm by cross-validated Qini on the training data only.

`AutoUpliftLearner` predicts every training row out of fold with every candidate, scores each
arm on the pooled out-of-fold predictions (Qini coefficient for binary outcomes, Qini gain
otherwise) and keeps, per arm, the simplest candidate whose shortfall against the best is within
one paired bootstrap standard error (candidates are listed simplest first). The chosen ones are
refitted on all rows. It never sees evaluation data. Uplift scores are noisy: preferring the
simpler model unless a complex one is clearly better avoids picking a model for its luck.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.model_selection import StratifiedKFold

from models.uplift import LEARNER_SPECS, make_learner
from models.uplift_base import BaseUpliftLearner, UpliftInputs
from models.uplift_resampling import bootstrap_weights, qini_scores_weighted

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CANDIDATES", "AutoUpliftLearner"]

# Simplest first: a constant shift of the link, an additive model, a full S-learner, then the
# learners that model each arm separately or through nuisance models.
DEFAULT_CANDIDATES: tuple[str, ...] = ("s-shift", "s-additive", "s", "t", "x", "dr")
RULES = ("one_se", "best")


class AutoUpliftLearner(BaseUpliftLearner):
    """Per arm, the candidate learner chosen by cross-validated Qini on the training data.

    Candidates are names from `models.uplift.LEARNER_SPECS`, simplest first. Folds are
    stratified on treatment (and outcome, when binary). `rule` is "one_se" (the simplest within
    one paired bootstrap standard error of the best) or "best". `cv_scores_` holds the pooled
    out-of-fold score per candidate (rows) and arm (columns), `cv_bootstrap_std_` its bootstrap
    standard deviation, `chosen_` the pick per arm.
    """

    def __init__(
        self,
        candidates: Sequence[str] = DEFAULT_CANDIDATES,
        *,
        control: Any = "control",
        outcome: str = "auto",
        n_folds: int = 3,
        rule: str = "one_se",
        n_bootstrap: int = 100,
        random_state: int | None = 0,
    ) -> None:
        self.candidates = candidates
        self.control = control
        self.outcome = outcome
        self.n_folds = n_folds
        self.rule = rule
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    def _candidate(self, name: str) -> BaseUpliftLearner:
        return make_learner(name, control=0, outcome=self.outcome_type_, random_state=self.random_state)

    def _check(self) -> None:
        unknown = [name for name in self.candidates if name not in LEARNER_SPECS]
        if unknown or not self.candidates:
            raise ValueError(
                f"unknown or no candidates {list(unknown) or []}; choose from {', '.join(LEARNER_SPECS)}"
            )
        if self.n_folds < 2:
            raise ValueError(f"n_folds must be at least 2, got {self.n_folds}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.n_bootstrap < 2:
            raise ValueError(f"n_bootstrap must be at least 2, got {self.n_bootstrap}")

    def _out_of_fold(self, inputs: UpliftInputs) -> dict[str, NDArray[np.float64]]:
        """Every candidate's uplift for every row from models that did not see the row."""
        strata = inputs.codes.astype(str)
        if inputs.outcome_type == "binary":
            strata = np.char.add(strata, inputs.outcome.astype(int).astype(str))
        splitter = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.random_state)
        n_arms = len(inputs.labels) - 1
        predictions = {name: np.zeros((len(inputs.codes), n_arms)) for name in self.candidates}
        for train_rows, valid_rows in splitter.split(inputs.features, strata):
            for name in self.candidates:
                learner = self._candidate(name).fit(
                    inputs.features.iloc[train_rows],
                    inputs.outcome[train_rows],
                    treatment=inputs.codes[train_rows],
                    propensity=_propensity_rows(inputs, train_rows),
                )
                uplift = learner.predict(inputs.features.iloc[valid_rows])
                order = [list(learner.arms_).index(code) for code in range(1, n_arms + 1)]
                predictions[name][valid_rows] = uplift[:, order]
        return predictions

    def _fit_learner(self, inputs: UpliftInputs) -> None:
        self._check()
        predictions = self._out_of_fold(inputs)
        rng = np.random.default_rng(self.random_state)
        normalise = inputs.outcome_type == "binary"
        scores, spreads, self.chosen_ = {}, {}, {}
        for code, arm in enumerate(self.arms_, start=1):
            rows = np.flatnonzero(np.isin(inputs.codes, [0, code]))
            outcome, treated = inputs.outcome[rows], (inputs.codes[rows] == code).astype(int)
            weights = np.vstack([np.ones(len(rows)), bootstrap_weights(treated, self.n_bootstrap, rng)])
            resampled = np.column_stack(
                [
                    qini_scores_weighted(
                        outcome, predictions[name][rows, code - 1], treated, weights, normalise=normalise
                    )
                    for name in self.candidates
                ]
            )
            point = dict(zip(self.candidates, resampled[0], strict=True))
            scores[arm] = point
            spreads[arm] = resampled[1:]
            self.chosen_[arm] = self._choose(point, resampled[1:])
        self.cv_scores_ = pd.DataFrame(scores)
        self.cv_bootstrap_std_ = pd.DataFrame(
            {arm: dict(zip(self.candidates, spreads[arm].std(axis=0, ddof=1), strict=True)) for arm in self.arms_}
        )
        logger.info("chosen uplift learner per arm: %s", self.chosen_)
        self.learners_ = {
            name: self._candidate(name).fit(
                inputs.features,
                inputs.outcome,
                treatment=inputs.codes,
                propensity=_propensity_rows(inputs, np.arange(len(inputs.codes))),
            )
            for name in sorted(set(self.chosen_.values()))
        }

    def _choose(self, point: dict[str, float], resampled: NDArray[np.float64]) -> str:
        """The best candidate, or the simplest whose shortfall is within one paired bootstrap SE."""
        names = list(self.candidates)
        best = max(names, key=lambda name: point[name])
        if self.rule == "best":
            return best
        for index, name in enumerate(names):  # simplest first
            shortfall = point[best] - point[name]
            std_error = np.std(resampled[:, names.index(best)] - resampled[:, index], ddof=1)
            if shortfall <= std_error:
                return name
        return best  # pragma: no cover - the best itself always qualifies

    def _predict_uplift(self, features: pd.DataFrame) -> NDArray[np.float64]:
        predictions = {name: learner.predict(features) for name, learner in self.learners_.items()}
        columns = []
        for code, arm in enumerate(self.arms_, start=1):
            learner = self.learners_[self.chosen_[arm]]
            columns.append(predictions[self.chosen_[arm]][:, list(learner.arms_).index(code)])
        return np.column_stack(columns)


def _propensity_rows(inputs: UpliftInputs, rows: NDArray[np.int64]) -> Any:
    """The known propensities of some rows, in a form candidates fitted on label codes accept."""
    if inputs.propensity is not None:
        return pd.DataFrame(inputs.propensity[rows], columns=range(len(inputs.labels)))
    if inputs.assigned_propensity is not None:
        return inputs.assigned_propensity[rows]
    return None
