"""Off-policy evaluation of a challenger `nbo` model on the decision log: `nbo policy evaluate`.

Every logged decision was drawn by the champion's policy with a logged probability (the
epsilon-greedy draw; holdout customers get nothing with probability 1). The challenger
re-decides the same customers at the same times from the features as of each decision day
(data strictly before it) and the customers' context, and its value, the mean outcome per
decision in the window after it, is estimated by IPS and doubly robust estimators
(models/policy_value.py), next to the champion's realised mean outcome on the same decisions.
Their intervals are Fay and Feuer's gamma intervals by default (`interval="gamma"`): the
challenger's value mostly rests on a few explored matches of weight ~10, where the normal
interval was measured to under-cover (benchmarks/bench_ope_coverage.py, RESULTS.md).
Actions are (offer, channel) options, "control" for no message; the challenger is evaluated as
it would be deployed (its own exploration, re-seeded so that its
draws are independent of the logged ones, and its holdout), or greedily with `greedy=True`.

IPS and DR are unbiased when every action the challenger takes had a positive probability in
the log: true for any option the champion allowed (exploration gives each at least epsilon /
options), not for holdout customers the challenger would message; those rows are counted as
`unsupported`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from features.contract import CONTROL_OFFER_ID
from features.dataset import Dataset
from features.snapshot import data_bounds, parse_timestamp
from models.policy_config import NO_MESSAGE
from models.policy_value import (
    PolicyValue,
    cross_fitted_action_outcomes,
    doubly_robust_policy_value,
    ips_policy_value,
)
from training.log_exposures import decision_features, decision_outcomes, read_decision_log, snapshot_feature_columns
from training.nbo_model import NboModel

logger = logging.getLogger(__name__)

__all__ = ["OUTCOMES", "PolicyEvaluation", "action_labels", "evaluate_on_log", "evaluate_policy", "evaluation_rows"]

OUTCOMES = ("convert", "revenue", "unsubscribe")
#: Added to the challenger's exploration seed so its draws are independent of the logged ones.
EVALUATION_SEED_OFFSET = 7919


@dataclass
class PolicyEvaluation:
    """The challenger's estimated value (IPS, DR) and the champion's realised value on one log."""

    outcome: str
    ips: PolicyValue
    doubly_robust: PolicyValue
    champion: PolicyValue
    rows: int
    agreement: float
    unsupported: int
    report: dict[str, Any] = field(default_factory=dict)
    actions: pd.DataFrame | None = None
    predicted_outcomes: pd.DataFrame | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the per-row actions)."""
        return {
            "outcome": self.outcome,
            "ips": self.ips.as_dict(),
            "doubly_robust": self.doubly_robust.as_dict(),
            "champion_realised": self.champion.as_dict(),
            "rows": self.rows,
            "agreement": self.agreement,
            "unsupported": self.unsupported,
            "report": self.report,
        }


def action_labels(offer_id: Any, channel: Any) -> np.ndarray:
    """`offer/channel` per row, or `control` for no message, holdout or the control arm."""
    offers = np.asarray(offer_id, dtype=object).astype(str)
    channels = np.asarray(pd.Series(channel, dtype=object).fillna("").to_numpy(dtype=object)).astype(str)
    control = np.isin(offers, [NO_MESSAGE, "holdout", CONTROL_OFFER_ID])
    return np.where(control, CONTROL_OFFER_ID, np.char.add(np.char.add(offers, "/"), channels)).astype(object)


def evaluation_rows(
    log_path: str | Path,
    dataset: Dataset,
    *,
    window_days: float = 14.0,
    observed_until: object | None = None,
    feature_set: str = "all",
    offer_ids: tuple[str, ...] = (),
    since: object | None = None,
    held_out_customers: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every logged decision (first per customer and day) with a complete outcome window: its
    logged action and probability, outcomes, and the decision input as of its day.

    A challenger trained on the log must be evaluated on other decisions (in-sample estimates
    are optimistic): `since` keeps decisions made at or after it (a later log period), and
    `held_out_customers` only the customers `nbo train uplift --exposures` held out of training
    on a single-day log (used with `--no-refit`).
    """
    from training.train_uplift import log_validation_customers

    logged = read_decision_log(log_path)
    report: dict[str, Any] = {"logged": len(logged)}
    decisions = logged[~logged.duplicated(["customer_id", "campaign_id"], keep="first")]
    if since is not None:
        decisions = decisions[decisions["decided_at"] >= parse_timestamp(since, "--since")]
    if held_out_customers:
        decisions = decisions[log_validation_customers(decisions["customer_id"].to_numpy(dtype=object))]
    report["selected"] = len(decisions)
    until = data_bounds(dataset)[1] if observed_until is None else parse_timestamp(observed_until, "--observed-until")
    complete = decisions["decided_at"] + pd.Timedelta(days=float(window_days)) <= until
    report["incomplete_window_dropped"] = int((~complete).sum())
    decisions = decisions[complete].reset_index(drop=True)
    if decisions.empty:
        raise ValueError(
            f"no logged decision has a complete {window_days:g}-day outcome window by {until}; "
            "wait for outcomes, give --observed-until or shorten --window-days"
        )
    outcomes = decision_outcomes(dataset, decisions, window_days)
    features = decision_features(dataset, decisions, feature_set, offer_ids)
    keep = ["decision_id", "campaign_id", "offer_id", "channel", "decided_at", "propensity", "holdout", "explored"]
    rows = decisions[keep].merge(outcomes, on="decision_id").merge(features, on="decision_id", how="inner").copy()
    rows["logged_action"] = action_labels(rows["offer_id"], rows["channel"])
    report["rows"] = len(rows)
    return rows, report


def _challenger_actions(model: NboModel, rows: pd.DataFrame) -> np.ndarray:
    """The challenger's action label per row, decided at each row's logged time."""
    chosen = np.empty(len(rows), dtype=object)
    drop = ["decision_id", "campaign_id", "offer_id", "channel", "decided_at", "propensity", "holdout", "explored",
            "logged_action", "outcome_convert", "outcome_revenue", "outcome_unsubscribe"]  # fmt: skip
    for decided_at, group in rows.groupby("decided_at", sort=True):
        frame = group.drop(columns=drop).reset_index(drop=True)
        as_of = group["as_of"].iloc[0] if "as_of" in group.columns else decided_at
        table = model.decisions(frame, now=decided_at, as_of=as_of).table
        chosen[group.index.to_numpy()] = action_labels(table["offer_id"], table["channel"])
    return chosen


def _send_costs(model: NboModel, labels: np.ndarray) -> dict[str, float]:
    """Cost per send of each `offer/channel` label in the catalog (control costs nothing)."""
    costs = {CONTROL_OFFER_ID: 0.0}
    for label in set(labels.tolist()) - {CONTROL_OFFER_ID}:
        offer_id, channel = label.split("/", 1)
        try:
            costs[label] = float(model.catalog.offer(offer_id).cost_per_send.get(channel, 0.0))
        except KeyError:
            costs[label] = 0.0
    return costs


def _mean_interval(values: np.ndarray, confidence: float, estimator: str) -> PolicyValue:
    n_rows = len(values)
    value = float(values.mean())
    std_error = float(values.std(ddof=1) / np.sqrt(n_rows)) if n_rows > 1 else float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    return PolicyValue(value, std_error, value - z * std_error, value + z * std_error, confidence, n_rows, estimator)


def evaluate_policy(
    model: NboModel,
    rows: pd.DataFrame,
    *,
    outcome: str = "convert",
    confidence: float = 0.95,
    net_of_send_cost: bool = False,
    greedy: bool = False,
    seed: int = 0,
    interval: str = "gamma",
) -> PolicyEvaluation:
    """IPS and DR value of `model`'s decisions on `rows` (from `evaluation_rows`), and the
    champion's realised mean outcome with its interval.

    `net_of_send_cost` subtracts each action's catalog send cost from its outcome (both sides);
    `interval` is "gamma" or "normal" for IPS and DR (models/policy_value.py).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"--outcome must be one of {OUTCOMES}, got {outcome!r}")
    y = rows[f"outcome_{outcome}"].to_numpy(dtype=float)
    if np.isnan(y).any():
        raise ValueError(f"outcome {outcome!r} is unknown for some decisions (no events table for unsubscribes?)")
    # Exploration draws hash (customer, seed, time): with the champion's seed the challenger
    # would copy every logged exploration, so its draws would depend on the logging draws and
    # IPS/DR would be biased. Re-seeding makes them independent; greedy turns exploration off.
    update = {"seed": model.config.seed + EVALUATION_SEED_OFFSET + seed}
    if greedy:
        update["exploration_share"] = 0.0
    model = NboModel(
        model.churn_model, model.uplift_models, model.catalog, model.config.model_copy(update=update),
        send_time_model=model.send_time_model, value=model.value, explain="none", metadata=model.metadata,
    )  # fmt: skip
    chosen = _challenger_actions(model, rows)
    logged = rows["logged_action"].to_numpy(dtype=object)
    propensity = rows["propensity"].to_numpy(dtype=float)
    costs = _send_costs(model, np.concatenate([chosen, logged])) if net_of_send_cost else None
    ips = ips_policy_value(y, logged, chosen, propensity, action_cost=costs, confidence=confidence, interval=interval)
    actions = sorted(set(chosen.tolist()) | set(logged.tolist()))
    feature_columns = snapshot_feature_columns(rows.drop(columns=["decided_at", "logged_action"]))
    feature_columns = [column for column in feature_columns if not column.startswith("outcome_")]
    mu = cross_fitted_action_outcomes(rows[feature_columns], logged, y, actions, random_state=seed)
    dr = doubly_robust_policy_value(
        y, logged, chosen, propensity, mu, action_cost=costs, confidence=confidence, interval=interval
    )
    realised = y - (np.array([costs[label] for label in logged]) if costs else 0.0)
    champion = _mean_interval(realised, confidence, "realised")
    holdout = rows["holdout"].to_numpy(dtype=bool)
    unsupported = int((holdout & (chosen != CONTROL_OFFER_ID)).sum())
    weights = 1.0 / propensity
    report = {
        "max_weight": float(weights.max()),
        "challenger_messages": int((chosen != CONTROL_OFFER_ID).sum()),
        "champion_messages": int((logged != CONTROL_OFFER_ID).sum()),
        "matched_rows": int((chosen == logged).sum()),
        "greedy": greedy,
        "net_of_send_cost": net_of_send_cost,
        "interval": ips.interval,
    }
    actions_frame = pd.DataFrame(
        {"decision_id": rows["decision_id"].to_numpy(), "logged": logged, "challenger": chosen}
    )
    logger.info(
        "challenger %s value: IPS %.4f [%.4f, %.4f], DR %.4f [%.4f, %.4f]; champion realised %.4f",
        outcome, ips.value, ips.low, ips.high, dr.value, dr.low, dr.high, champion.value,
    )  # fmt: skip
    return PolicyEvaluation(
        outcome=outcome, ips=ips, doubly_robust=dr, champion=champion, rows=len(rows),
        agreement=float((chosen == logged).mean()), unsupported=unsupported, report=report, actions=actions_frame,
        predicted_outcomes=mu,
    )  # fmt: skip


def evaluate_on_log(
    model: NboModel,
    log_path: str | Path,
    dataset: Dataset,
    *,
    outcome: str = "convert",
    window_days: float = 14.0,
    observed_until: object | None = None,
    confidence: float = 0.95,
    net_of_send_cost: bool = False,
    greedy: bool = False,
    since: object | None = None,
    held_out_customers: bool = False,
    interval: str = "gamma",
) -> PolicyEvaluation:
    """`evaluation_rows` then `evaluate_policy` (the challenger's decision feature set)."""
    feature_set = model.metadata.get("decision_feature_set", "all")
    rows, report = evaluation_rows(
        log_path, dataset, window_days=window_days, observed_until=observed_until, feature_set=feature_set,
        offer_ids=model.catalog.offer_ids, since=since, held_out_customers=held_out_customers,
    )  # fmt: skip
    result = evaluate_policy(
        model,
        rows,
        outcome=outcome,
        confidence=confidence,
        net_of_send_cost=net_of_send_cost,
        greedy=greedy,
        interval=interval,
    )
    result.report = {**report, **result.report}
    return result
