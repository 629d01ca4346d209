"""Backtests on any randomised campaign table: the H-visit and H-policy protocols of DATA.md.

H-visit (uplift ranking): stratified 50/50 train/test splits on treatment x outcome, seeds
0..splits-1; a learner fitted on the training half ranks the test half; Qini coefficient and
uplift@k per arm against control. H-policy: splits stratified on the arm; a policy learned on the
training half is valued on the test half by inverse propensity, beside always-control and
always-each-arm. Every choice (learner, deviation margin) is made on the training half only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from models.policy_value import ips_policy_value
from models.uplift import LEARNERS, make_learner
from models.uplift_metrics import qini_auc_score, qini_gain, uplift_at_k
from models.uplift_policy import GatedArmPolicy
from models.uplift_select import DEFAULT_CANDIDATES, AutoUpliftLearner

logger = logging.getLogger(__name__)

__all__ = [
    "CampaignTable",
    "load_campaign_table",
    "prepare_campaign",
    "run_policy_backtest",
    "run_visit_backtest",
]

Progress = Callable[[str, float], None]


def load_campaign_table(path: str | Path) -> pd.DataFrame:
    """Read a campaign table from CSV or Parquet."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"campaign table {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt", ".gz"):
        return pd.read_csv(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


class CampaignTable:
    """A checked campaign table: features, outcome, treatment labels and the control label."""

    def __init__(
        self,
        features: pd.DataFrame,
        outcome: np.ndarray,
        treatment: np.ndarray,
        control: Any,
        arms: list[Any],
        propensity: np.ndarray | None,
    ) -> None:
        self.features = features
        self.outcome = outcome
        self.treatment = treatment
        self.control = control
        self.arms = arms
        self.propensity = propensity

    @property
    def is_binary(self) -> bool:
        return bool(np.isin(self.outcome, [0.0, 1.0]).all())

    @property
    def codes(self) -> np.ndarray:
        """Integer arm codes: control 0, then the arms in sorted order (1, 2, ...)."""
        mapping = {label: code for code, label in enumerate([self.control, *self.arms])}
        return np.array([mapping[label] for label in self.treatment], dtype=np.int64)


def prepare_campaign(
    table: pd.DataFrame,
    *,
    treatment_col: str,
    control: str,
    outcome_col: str,
    features: Sequence[str] | None = None,
    arm: str | None = None,
    propensity_col: str | None = None,
) -> CampaignTable:
    """Check columns and labels and build the feature frame; errors say what to change.

    Without `features`, every column other than treatment, outcome and propensity is a feature;
    non-numeric features become categorical. With `arm`, only that arm and control are kept.
    """
    columns = [str(column) for column in table.columns]
    named = {"--treatment-col": treatment_col, "--outcome-col": outcome_col}
    if propensity_col:
        named["--propensity-col"] = propensity_col
    for flag, column in named.items():
        if column not in columns:
            raise ValueError(f"{flag} {column!r} is not a column of the table; columns: {columns}")
    treatment = table[treatment_col].astype(str).to_numpy(dtype=object)
    labels = sorted(set(treatment.tolist()))
    if str(control) not in labels:
        raise ValueError(
            f"control label {control!r} not found in column {treatment_col!r}; labels present: {labels}"
        )
    arms = [label for label in labels if label != str(control)]
    if arm is not None:
        if arm == str(control):
            raise ValueError(f"--arm {arm!r} is the control label; pick one of the arms {arms}")
        if arm not in arms:
            raise ValueError(f"--arm {arm!r} not found in column {treatment_col!r}; arms present: {arms}")
        arms = [arm]
    if not arms:
        raise ValueError(
            f"column {treatment_col!r} holds only the control label {control!r}: a campaign table "
            "needs at least one treated arm besides control"
        )
    keep = np.isin(treatment, [str(control), *arms])
    table = table.loc[keep].reset_index(drop=True)
    treatment = treatment[keep]
    outcome = pd.to_numeric(table[outcome_col], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(outcome)
    if bad.any():
        raise ValueError(
            f"outcome column {outcome_col!r} has {int(bad.sum())} missing or non-numeric values "
            f"(e.g. rows {np.flatnonzero(bad)[:5].tolist()}); fix or drop them"
        )
    excluded = {treatment_col, outcome_col, propensity_col}
    feature_names = list(features) if features else [c for c in columns if c not in excluded]
    missing = [name for name in feature_names if name not in columns]
    if missing:
        raise ValueError(f"--features {missing} are not columns of the table; columns: {columns}")
    clashes = [name for name in feature_names if name in excluded]
    if clashes:
        raise ValueError(f"--features must not include the treatment, outcome or propensity columns: {clashes}")
    if not feature_names:
        raise ValueError("no feature columns left; pass --features a,b,...")
    propensity = None
    if propensity_col:
        propensity = pd.to_numeric(table[propensity_col], errors="coerce").to_numpy(np.float64)
    return CampaignTable(
        features=_feature_frame(table, feature_names),
        outcome=outcome,
        treatment=treatment,
        control=str(control),
        arms=arms,
        propensity=propensity,
    )


def _feature_frame(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Numeric and boolean columns stay numeric; every other column becomes categorical."""
    frame = pd.DataFrame(index=table.index)
    for name in names:
        series = table[name]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            frame[name] = series.astype(np.float64)
        elif pd.api.types.is_datetime64_any_dtype(series):
            raise ValueError(f"feature {name!r} is a timestamp; derive numeric features from it first")
        else:
            frame[name] = series.astype(str).where(series.notna()).astype("category")
    return frame


def _split(strata: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified 50/50 split. Strata are integers (arm code, or arm code x 2 + outcome), the
    encoding the published Hillstrom figures used, so the same seeds give the same splits."""
    counts = pd.Series(strata).value_counts()
    if counts.min() < 2:
        raise ValueError(
            f"a treatment x outcome group has only {counts.min()} row; every arm (and, for a 0/1 "
            "outcome, every arm x outcome pair) needs at least 2 rows for a stratified 50/50 split"
        )
    rows = np.arange(len(strata))
    train_rows, test_rows = train_test_split(rows, test_size=0.5, stratify=strata, random_state=seed)
    return np.sort(train_rows), np.sort(test_rows)


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def _make_visit_learner(
    learner: str, control: str, seed: int, candidates: Sequence[str] | None
):
    if learner == "auto":
        return AutoUpliftLearner(
            candidates=tuple(candidates or DEFAULT_CANDIDATES), control=control, random_state=seed
        )
    if candidates:
        raise ValueError("candidates only apply to --learner auto")
    if learner not in LEARNERS:
        raise ValueError(f"--learner {learner!r} unknown; choose auto or one of {', '.join(LEARNERS)}")
    return make_learner(learner, control=control, random_state=seed)


def run_visit_backtest(
    table: pd.DataFrame,
    *,
    treatment_col: str,
    control: str,
    outcome_col: str,
    arm: str | None = None,
    features: Sequence[str] | None = None,
    splits: int = 10,
    learner: str = "auto",
    candidates: Sequence[str] | None = None,
    k: float = 0.3,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The H-visit protocol: per split and arm, Qini and uplift@k on the test half.

    `learner="auto"` picks per split and arm among `candidates` (default: every learner) by
    cross-validated Qini on that split's training half.

    Binary outcomes report the Qini coefficient (scikit-uplift's `qini_auc_score`); continuous
    ones the Qini gain (incremental outcome per row above random). Std is over splits (ddof=1).
    """
    if splits < 2:
        raise ValueError(f"--splits must be at least 2, got {splits}")
    if not 0 < k < 1:
        raise ValueError(f"k must be a share in (0, 1), got {k}")
    campaign = prepare_campaign(
        table, treatment_col=treatment_col, control=control, outcome_col=outcome_col,
        features=features, arm=arm,
    )
    metric_name = "qini" if campaign.is_binary else "qini_gain"
    strata = campaign.codes * 2 + campaign.outcome.astype(int) if campaign.is_binary else campaign.codes
    started = time.perf_counter()
    records = []
    for seed in range(splits):
        train_rows, test_rows = _split(strata, seed)
        model = _make_visit_learner(learner, campaign.control, seed, candidates)
        model.fit(
            campaign.features.iloc[train_rows], campaign.outcome[train_rows],
            treatment=campaign.treatment[train_rows],
        )
        uplift = model.predict(campaign.features.iloc[test_rows])
        for arm_label in campaign.arms:
            column = list(model.arms_).index(arm_label)
            rows = np.isin(campaign.treatment[test_rows], [campaign.control, arm_label])
            y_test = campaign.outcome[test_rows][rows]
            treated = (campaign.treatment[test_rows][rows] == arm_label).astype(int)
            score = uplift[rows, column]
            metric = qini_auc_score if campaign.is_binary else qini_gain
            records.append(
                {
                    "seed": seed,
                    "arm": arm_label,
                    metric_name: metric(y_test, score, treated),
                    "uplift_at_k": uplift_at_k(y_test, score, treated, k=k, strategy="overall"),
                    "learner": model.chosen_[arm_label] if learner == "auto" else learner,
                    "n_train": len(train_rows),
                    "n_test": int(rows.sum()),
                }
            )
        if progress is not None:
            progress(f"split {seed + 1}/{splits}", (seed + 1) / splits)
        logger.info("H-visit split %d done", seed)
    frame = pd.DataFrame(records)
    summary = {}
    for arm_label in campaign.arms:
        arm_rows = frame[frame["arm"] == arm_label]
        summary[arm_label] = {
            metric_name: _summary(arm_rows[metric_name].tolist()),
            "uplift_at_k": _summary(arm_rows["uplift_at_k"].tolist()),
            "learners": arm_rows["learner"].value_counts().to_dict(),
        }
    return {
        "protocol": "H-visit",
        "treatment_col": treatment_col,
        "control": campaign.control,
        "outcome_col": outcome_col,
        "arms": campaign.arms,
        "features": list(campaign.features.columns),
        "splits": splits,
        "learner": learner,
        "candidates": list(candidates or DEFAULT_CANDIDATES) if learner == "auto" else None,
        "k": k,
        "metric": metric_name,
        "rows": len(campaign.outcome),
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "per_split": records,
    }


def run_policy_backtest(
    table: pd.DataFrame,
    *,
    treatment_col: str,
    control: str,
    outcome_col: str,
    cost_per_send: float,
    features: Sequence[str] | None = None,
    splits: int = 10,
    propensity_col: str | None = None,
    learner: str = "s-additive",
    min_z: float = 2.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The H-policy protocol: IPS value (net of send costs) of a learned policy and of the
    constant policies, on the test half of each split.

    Without `propensity_col` the table is taken to be a randomised test: an action's propensity
    is its share of all rows. Std is over splits (ddof=1).
    """
    if splits < 2:
        raise ValueError(f"--splits must be at least 2, got {splits}")
    if not np.isfinite(cost_per_send) or cost_per_send < 0:
        raise ValueError(f"--cost-per-send must be a non-negative number, got {cost_per_send}")
    campaign = prepare_campaign(
        table, treatment_col=treatment_col, control=control, outcome_col=outcome_col,
        features=features, propensity_col=propensity_col,
    )
    labels = [campaign.control, *campaign.arms]
    if campaign.propensity is not None:
        propensity = campaign.propensity
    else:
        shares = pd.Series(campaign.treatment).value_counts(normalize=True)
        propensity = shares.reindex(campaign.treatment).to_numpy(np.float64)
    costs = {label: (0.0 if label == campaign.control else float(cost_per_send)) for label in labels}
    strata = campaign.codes
    started = time.perf_counter()
    records = []
    for seed in range(splits):
        train_rows, test_rows = _split(strata, seed)
        policy = GatedArmPolicy(
            control=campaign.control, cost_per_send=cost_per_send, learner=learner,
            min_z=min_z, random_state=seed,
        ).fit(
            campaign.features.iloc[train_rows], campaign.outcome[train_rows],
            treatment=campaign.treatment[train_rows], propensity=propensity[train_rows],
        )
        actions = policy.predict(campaign.features.iloc[test_rows])

        def value(chosen, test_rows=test_rows):
            return ips_policy_value(
                campaign.outcome[test_rows], campaign.treatment[test_rows], chosen,
                propensity[test_rows], action_cost=costs,
            ).value

        record = {
            "seed": seed,
            "learned": value(actions),
            "base_action": policy.base_action_,
            "deviation_share": float((actions != policy.base_action_).mean()),
            "action_shares": pd.Series(actions).value_counts(normalize=True).to_dict(),
        }
        for label in labels:
            record[f"always {label}"] = value(np.full(len(test_rows), label, dtype=object))
        records.append(record)
        if progress is not None:
            progress(f"split {seed + 1}/{splits}", (seed + 1) / splits)
        logger.info("H-policy split %d: learned %.4f", seed, record["learned"])
    policies = ["learned", *[f"always {label}" for label in labels]]
    return {
        "protocol": "H-policy",
        "treatment_col": treatment_col,
        "control": campaign.control,
        "outcome_col": outcome_col,
        "arms": campaign.arms,
        "features": list(campaign.features.columns),
        "cost_per_send": cost_per_send,
        "splits": splits,
        "propensity": propensity_col or "share of rows per action (randomised test)",
        "rows": len(campaign.outcome),
        "seconds": round(time.perf_counter() - started, 1),
        "summary": {name: _summary([r[name] for r in records]) for name in policies},
        "per_split": records,
    }
