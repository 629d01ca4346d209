"""Train the offer-response (uplift) models from randomised campaigns: `nbo train uplift`.

Each exposure (customer, campaign, arm) becomes one training row: snapshot features as of the
campaign's first assignment (so no row sees its own outcome window), and outcomes in the
`window_days` after its own `assigned_at`: conversion (any order), revenue (sum of amounts) and
unsubscribe (any unsubscribe event). The latest campaign(s) are held out; Optuna picks, per
outcome, the learner (S, T, X, DR from models/uplift.py) and its LightGBM shape by Qini on the
held-out campaigns. The chosen learners are refitted on every campaign and registered as
`uplift`, promoted by a champion gate on the held-out conversion Qini.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pandas as pd

from features.contract import CONTROL_OFFER_ID
from features.dataset import Dataset
from features.snapshot import build_snapshot, data_bounds
from models.uplift import LEARNERS, make_learner
from models.uplift_base import FeatureEncoder, lightgbm_params, make_outcome_model
from models.uplift_metrics import qini_auc_score, qini_curve
from training.churn import feature_columns
from training.nbo_model import OUTCOMES, UpliftModels

logger = logging.getLogger(__name__)

__all__ = [
    "MODEL_NAME",
    "UpliftResult",
    "UpliftRows",
    "UpliftSetup",
    "arm_qini",
    "build_uplift_rows",
    "build_uplift_rows_from_log",
    "campaign_outcomes",
    "fit_uplift_models",
    "log_uplift_run",
    "log_validation_customers",
    "validation_split",
]

MODEL_NAME = "uplift"
EXPERIMENT = "uplift"
OUTCOME_PREFIX = "outcome_"
#: Learners the search may choose among by default (any of models.uplift.LEARNERS may be given).
LEARNER_CHOICES = ("s", "t", "x", "dr")
GATE_METRIC = "qini_convert"
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class UpliftSetup:
    """What to train on and how hard to search; the flags of `nbo train uplift`."""

    window_days: int = 14
    feature_set: str = "all"
    validation_campaigns: int = 1
    trials: int = 6
    learners: tuple[str, ...] = LEARNER_CHOICES
    outcomes: tuple[str, ...] = OUTCOMES
    n_folds: int = 3
    refit: bool = True
    seed: int = 0

    def check(self) -> None:
        """ValueError naming the flag for settings that cannot work."""
        if self.window_days < 1:
            raise ValueError(f"--window-days must be at least 1, got {self.window_days}")
        if self.validation_campaigns < 1:
            raise ValueError(f"--validation-campaigns must be at least 1, got {self.validation_campaigns}")
        if self.trials < 1:
            raise ValueError(f"--trials must be at least 1, got {self.trials}")
        unknown = [name for name in self.learners if name not in LEARNERS]
        if unknown or not self.learners:
            raise ValueError(f"--learners {list(self.learners)}: choose among {', '.join(LEARNERS)}")
        unknown = [name for name in self.outcomes if name not in OUTCOMES]
        if unknown or "convert" not in self.outcomes:
            raise ValueError(f"outcomes {list(self.outcomes)} must include 'convert' and be among {OUTCOMES}")


@dataclass
class UpliftRows:
    """One row per exposure: keys, arm, known propensity, outcomes and snapshot features."""

    frame: pd.DataFrame
    feature_columns: list[str]
    campaigns: list[str]  # in order of their first assignment

    def outcome(self, name: str) -> np.ndarray:
        """The realised outcome `name` (convert, revenue, unsubscribe) per row."""
        return self.frame[OUTCOME_PREFIX + name].to_numpy(dtype=float)


# ----------------------------------------------------------------------------------------------
# Training rows
# ----------------------------------------------------------------------------------------------


def campaign_outcomes(dataset: Dataset, window_days: int) -> pd.DataFrame:
    """Every exposure with its outcomes in [assigned_at, assigned_at + window_days).

    Exposures whose window runs past the last transaction are dropped (their outcome is not
    known yet). Columns: customer_id, campaign_id, offer_id, assigned_at, propensity,
    outcome_convert, outcome_revenue, outcome_unsubscribe.
    """
    if not dataset.has("exposures"):
        raise ValueError("training uplift models needs the exposures table (randomised campaigns with a control arm)")
    _, last = data_bounds(dataset)
    window = ibis.interval(days=int(window_days))
    exposures = dataset["exposures"]
    if "propensity" not in exposures.columns:
        raise ValueError("table 'exposures' has no propensity column; randomised campaigns must record it")
    exposures = exposures.filter(exposures.assigned_at + window <= ibis.literal(last.to_pydatetime()))
    keys = ["customer_id", "campaign_id"]
    transactions = dataset["transactions"]
    joined = exposures.left_join(
        transactions,
        [
            exposures.customer_id == transactions.customer_id,
            transactions.ts >= exposures.assigned_at,
            transactions.ts < exposures.assigned_at + window,
        ],
    )
    orders = joined.group_by([joined[key] for key in keys]).aggregate(
        outcome_convert=(joined.amount.count() > 0).cast("float64"),
        outcome_revenue=joined.amount.sum().fill_null(0.0).cast("float64"),
    )
    result = exposures.select(*keys, "offer_id", "assigned_at", "propensity").join(orders, keys)
    if dataset.has("events"):
        events = dataset["events"]
        unsubscribes = events.filter(events.event_type == "unsubscribe")
        hit = exposures.join(
            unsubscribes,
            [
                exposures.customer_id == unsubscribes.customer_id,
                unsubscribes.ts >= exposures.assigned_at,
                unsubscribes.ts < exposures.assigned_at + window,
            ],
        )
        flagged = hit.select(*[hit[key] for key in keys]).distinct().mutate(outcome_unsubscribe=ibis.literal(1.0))
        result = result.left_join(flagged, keys).select(
            *[result[column] for column in result.columns],
            outcome_unsubscribe=flagged.outcome_unsubscribe.fill_null(0.0),
        )
    frame = result.order_by(keys).to_pandas()
    if "outcome_unsubscribe" not in frame.columns:
        frame["outcome_unsubscribe"] = np.nan
    dropped = int(dataset["exposures"].count().execute()) - len(frame)
    if dropped:
        logger.info("dropped %d exposures whose %d-day outcome window runs past %s", dropped, window_days, last)
    return frame


def build_uplift_rows(dataset: Dataset, setup: UpliftSetup, progress: Progress | None = None) -> UpliftRows:
    """Exposures with outcomes and the snapshot features as of each campaign's first assignment."""
    setup.check()
    outcomes = campaign_outcomes(dataset, setup.window_days)
    if outcomes.empty:
        raise ValueError(
            f"no exposure has a complete {setup.window_days}-day outcome window in the data; "
            "add campaigns, extend the history or shorten --window-days"
        )
    starts = outcomes.groupby("campaign_id")["assigned_at"].min().sort_values()
    report = progress or (lambda stage, fraction: None)
    parts = []
    for index, (campaign, start) in enumerate(starts.items()):
        report(f"snapshot for {campaign}", index / len(starts))
        snapshot = build_snapshot(dataset, start, feature_set=setup.feature_set)
        rows = outcomes[outcomes["campaign_id"] == campaign]
        parts.append(rows.merge(snapshot.drop(columns=["as_of"]), on="customer_id", how="inner"))
    frame = pd.concat(parts, ignore_index=True)
    columns = feature_columns(frame.drop(columns=[c for c in outcomes.columns if c != "customer_id"]))
    arms = sorted(set(frame["offer_id"]) - {CONTROL_OFFER_ID})
    if CONTROL_OFFER_ID not in set(frame["offer_id"]) or not arms:
        raise ValueError(
            f"exposures need a control arm ({CONTROL_OFFER_ID!r}) and at least one offer; found "
            f"{sorted(set(frame['offer_id']))}"
        )
    logger.info("uplift rows: %d exposures in %d campaigns, arms %s", len(frame), len(starts), arms)
    return UpliftRows(frame=frame, feature_columns=columns, campaigns=list(starts.index))


#: Salt of the hash that holds customers of a single-day decision log out of training.
LOG_VALIDATION_SALT = "nbo-log-validation"
LOG_VALIDATION_SHARE = 0.3


def log_validation_customers(customer_ids: Any, share: float = LOG_VALIDATION_SHARE) -> np.ndarray:
    """Whether each customer is held out of training on a single-day decision log (a hash of the
    id, so `nbo policy evaluate --held-out-customers` can evaluate on exactly those)."""
    from models.policy_rules import hash_uniform

    return hash_uniform(np.asarray(customer_ids, dtype=object), LOG_VALIDATION_SALT) < share


def build_uplift_rows_from_log(
    log_path: Any,
    dataset: Dataset,
    setup: UpliftSetup,
    *,
    observed_until: object | None = None,
    max_weight: float | None = None,
    validation_share: float = LOG_VALIDATION_SHARE,
) -> tuple[UpliftRows, dict[str, Any]]:
    """Training rows from a decision log (training/log_exposures.py) instead of campaigns.

    Each decision day is a campaign (`nbo-YYYY-MM-DD`); the logged probability of each kept
    decision is its arm's known propensity (capped at 1 / max_weight). A log of a single day is
    split into two pseudo-campaigns by a hash of the customer id (`validation_share` of the
    customers validate), so learners are still chosen on held-out customers; with `refit=False`
    the registered models never see them, and they can serve for off-policy evaluation.
    Returns the rows and log_exposures' report.
    """
    from training.log_exposures import DEFAULT_MAX_WEIGHT, log_exposures

    setup.check()
    if not 0 < validation_share < 1:
        raise ValueError(f"validation_share must be in (0, 1), got {validation_share}")
    logged = log_exposures(
        log_path, dataset, window_days=setup.window_days, feature_set=setup.feature_set,
        observed_until=observed_until, max_weight=max_weight or DEFAULT_MAX_WEIGHT,
    )  # fmt: skip
    frame = logged.frame.copy()
    arms = sorted(set(frame["offer_id"]) - {CONTROL_OFFER_ID})
    if CONTROL_OFFER_ID not in set(frame["offer_id"]) or not arms:
        raise ValueError(
            f"the log's randomised decisions need a control arm (no message or holdout) and at least one offer; "
            f"found {logged.report['arms']}"
        )
    if frame["campaign_id"].nunique() == 1:
        day = str(frame["campaign_id"].iloc[0])
        held = log_validation_customers(frame["customer_id"].to_numpy(dtype=object), validation_share)
        frame["campaign_id"] = np.where(held, f"{day}#validation", f"{day}#train")
    starts = frame.groupby("campaign_id")["assigned_at"].min().sort_values(kind="stable")
    campaigns = sorted(starts.index, key=lambda name: (starts[name], name.endswith("#validation")))
    logger.info("uplift rows from the decision log: %d decisions, arms %s", len(frame), logged.report["arms"])
    return UpliftRows(frame=frame, feature_columns=logged.feature_columns, campaigns=campaigns), logged.report


def validation_split(rows: UpliftRows, validation_campaigns: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, validation): the latest `validation_campaigns` campaigns validate."""
    if validation_campaigns >= len(rows.campaigns):
        raise ValueError(
            f"{len(rows.campaigns)} campaigns cannot hold out {validation_campaigns} and still train; "
            "use fewer --validation-campaigns or more campaigns"
        )
    held_out = rows.campaigns[-validation_campaigns:]
    validation = rows.frame["campaign_id"].isin(held_out).to_numpy()
    return ~validation, validation


# ----------------------------------------------------------------------------------------------
# Scores
# ----------------------------------------------------------------------------------------------


def _continuous_qini(y: np.ndarray, score: np.ndarray, treated: np.ndarray) -> float:
    """Area between the Qini curve and the random line, per customer squared (continuous outcomes)."""
    x, gain = qini_curve(y, score, treated)
    random_area = 0.5 * x[-1] * gain[-1]
    return float((np.trapezoid(gain, x) - random_area) / max(x[-1], 1.0) ** 2)


def arm_qini(
    outcome: np.ndarray, effects: np.ndarray, offer_ids: np.ndarray, arms: Sequence[str], *, binary: bool
) -> dict[str, float]:
    """Qini of each arm against control, on the rows of that arm and of control.

    Binary outcomes use the normalised Qini coefficient (0 random, 1 perfect); continuous ones
    the area above random per customer squared. NaN when the arm's rows cannot be scored.
    """
    scores = {}
    control = offer_ids == CONTROL_OFFER_ID
    for position, arm in enumerate(arms):
        rows = control | (offer_ids == arm)
        treated = (offer_ids[rows] == arm).astype(int)
        y, score = outcome[rows], effects[rows, position]
        try:
            scores[arm] = qini_auc_score(y, score, treated) if binary else _continuous_qini(y, score, treated)
        except ValueError as error:
            logger.warning("Qini of arm %s not defined: %s", arm, error)
            scores[arm] = float("nan")
    return scores


def _mean_score(scores: Mapping[str, float]) -> float:
    values = [value for value in scores.values() if np.isfinite(value)]
    return float(np.mean(values)) if values else float("nan")


# ----------------------------------------------------------------------------------------------
# Fitting and selection
# ----------------------------------------------------------------------------------------------


def make_uplift_learner(name: str, params: Mapping[str, Any], setup: UpliftSetup) -> Any:
    """A learner from models/uplift.py with LightGBM parameters (cross-fitting folds for X and DR)."""
    extra = {"n_folds": setup.n_folds} if name in ("x", "dr") else {}
    return make_learner(name, params=dict(params), random_state=setup.seed, **extra)


def _fit(
    name: str, params: Mapping[str, Any], rows: pd.DataFrame, columns: list[str], outcome: str, setup: UpliftSetup
):
    learner = make_uplift_learner(name, params, setup)
    return learner.fit(
        rows[columns],
        rows[OUTCOME_PREFIX + outcome].to_numpy(dtype=float),
        treatment=rows["offer_id"].to_numpy(dtype=object),
        propensity=rows["propensity"].to_numpy(dtype=float),
    )


def _suggest(trial: Any, setup: UpliftSetup) -> tuple[str, dict[str, Any]]:
    name = trial.suggest_categorical("learner", list(setup.learners))
    params = {
        "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 3, 31, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 50, 400, log=True),
    }
    return name, params


@dataclass
class OutcomeChoice:
    """The learner chosen for one outcome, its held-out scores and the search's trials."""

    outcome: str
    learner: str
    params: dict[str, Any]
    validation_qini: dict[str, float]
    validation_effects: np.ndarray
    trials: pd.DataFrame


def select_learner(
    rows: UpliftRows, outcome: str, setup: UpliftSetup, train: np.ndarray, validation: np.ndarray
) -> OutcomeChoice:
    """Optuna search (TPE, `setup.trials` trials) over learner and LightGBM shape by held-out Qini.

    The first trial is each learner's default shape, so a short search still compares learners.
    """
    import optuna

    frame, columns = rows.frame, rows.feature_columns
    train_rows, validation_rows = frame[train], frame[validation]
    if np.isnan(train_rows[OUTCOME_PREFIX + outcome].to_numpy(dtype=float)).any():
        raise ValueError(f"outcome {outcome!r} is unknown for some exposures (no events table?)")
    offer_ids = validation_rows["offer_id"].to_numpy(dtype=object)
    y = validation_rows[OUTCOME_PREFIX + outcome].to_numpy(dtype=float)
    binary = bool(np.isin(y, [0.0, 1.0]).all())
    fitted: dict[int, tuple[dict[str, float], np.ndarray]] = {}

    def objective(trial: Any) -> float:
        name, params = _suggest(trial, setup)
        learner = _fit(name, params, train_rows, columns, outcome, setup)
        effects = learner.predict(validation_rows[columns])
        scores = arm_qini(y, effects, offer_ids, [str(arm) for arm in learner.arms_], binary=binary)
        fitted[trial.number] = (scores, effects)
        for arm, value in scores.items():
            trial.set_user_attr(f"qini_{arm}", value)
        score = _mean_score(scores)
        return score if np.isfinite(score) else -1.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=setup.seed, n_startup_trials=max(len(setup.learners), 3))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    defaults = {"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 200}
    for name in setup.learners[: setup.trials]:
        study.enqueue_trial({"learner": name, **defaults})
    study.optimize(objective, n_trials=setup.trials)
    best = study.best_trial
    name = best.params["learner"]
    params = {key: value for key, value in best.params.items() if key != "learner"}
    scores, effects = fitted[best.number]
    logger.info("outcome %s: best learner %s %s, held-out Qini %.4f", outcome, name, params, best.value)
    return OutcomeChoice(outcome, name, params, scores, effects, study.trials_dataframe())


@dataclass
class UpliftResult:
    """Chosen learners per outcome, the deployable bundle and its held-out evidence."""

    models: UpliftModels
    choices: dict[str, OutcomeChoice]
    rows: UpliftRows
    train: np.ndarray
    validation: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)


def fit_baseline_convert(rows: pd.DataFrame, columns: list[str], seed: int) -> tuple[Any, FeatureEncoder]:
    """P(convert | control) in the outcome window: LightGBM on the control rows."""
    encoder = FeatureEncoder.fit(rows[columns])
    control = rows[rows["offer_id"] == CONTROL_OFFER_ID]
    y = control[OUTCOME_PREFIX + "convert"].to_numpy(dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError("the control arm has no conversions (or only conversions); the baseline cannot be learned")
    model = make_outcome_model("binary", lightgbm_params(None, seed))
    model.fit(encoder.transform(control[columns]), y)
    return model, encoder


def fit_uplift_models(rows: UpliftRows, setup: UpliftSetup, progress: Progress | None = None) -> UpliftResult:
    """Select a learner per outcome on the held-out campaigns, then refit on all of them."""
    setup.check()
    train, validation = validation_split(rows, setup.validation_campaigns)
    report = progress or (lambda stage, fraction: None)
    choices, learners = {}, {}
    outcomes = [name for name in setup.outcomes if not np.isnan(rows.outcome(name)).all()]
    for index, outcome in enumerate(outcomes):
        report(f"searching {outcome}", index / (len(outcomes) + 1))
        choice = select_learner(rows, outcome, setup, train, validation)
        choices[outcome] = choice
        learning_rows = rows.frame if setup.refit else rows.frame[train]
        learners[outcome] = _fit(choice.learner, choice.params, learning_rows, rows.feature_columns, outcome, setup)
    report("baseline conversion", len(outcomes) / (len(outcomes) + 1))
    baseline, encoder = fit_baseline_convert(
        rows.frame if setup.refit else rows.frame[train], rows.feature_columns, setup.seed
    )
    models = UpliftModels(
        learners=learners,
        baseline_convert=baseline,
        baseline_encoder=encoder,
        feature_columns=tuple(rows.feature_columns),
        window_days=float(setup.window_days),
        metadata={
            "campaigns": rows.campaigns,
            "validation_campaigns": rows.campaigns[-setup.validation_campaigns :],
            "learners": {outcome: choice.learner for outcome, choice in choices.items()},
            "feature_set": setup.feature_set,
        },
    )
    metrics = {}
    for outcome, choice in choices.items():
        metrics[f"qini_{outcome}"] = _mean_score(choice.validation_qini)
        for arm, value in choice.validation_qini.items():
            metrics[f"qini_{outcome}_{arm}"] = value
    return UpliftResult(models, choices, rows, train, validation, metrics)


# ----------------------------------------------------------------------------------------------
# MLflow
# ----------------------------------------------------------------------------------------------


def _qini_figure(result: UpliftResult, outcome: str) -> Any:
    from matplotlib import pyplot as plt

    choice = result.choices[outcome]
    validation_rows = result.rows.frame[result.validation]
    offer_ids = validation_rows["offer_id"].to_numpy(dtype=object)
    y = validation_rows[OUTCOME_PREFIX + outcome].to_numpy(dtype=float)
    arms = list(choice.validation_qini)
    figure, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 3.6), squeeze=False)
    for position, arm in enumerate(arms):
        axis = axes[0, position]
        rows = (offer_ids == CONTROL_OFFER_ID) | (offer_ids == arm)
        treated = (offer_ids[rows] == arm).astype(int)
        x, gain = qini_curve(y[rows], choice.validation_effects[rows, position], treated)
        axis.plot(x, gain, label=f"{choice.learner} (Qini {choice.validation_qini[arm]:.3f})")
        axis.plot([0, x[-1]], [0, gain[-1]], linestyle="--", color="grey", label="random")
        axis.set_title(f"{outcome}: {arm} vs control")
        axis.set_xlabel("customers targeted (by predicted uplift)")
        axis.set_ylabel("incremental outcome")
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _champion_qini(result: UpliftResult) -> dict[str, float] | None:
    """The current champion's conversion Qini on the same held-out rows (None without champion)."""
    import mlflow

    from training import tracking

    current = tracking.champion_version(MODEL_NAME)
    if current is None:
        return None
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{tracking.CHAMPION_ALIAS}").unwrap_python_model()
    validation_rows = result.rows.frame[result.validation]
    learner = champion.models.learners["convert"]
    champion.models.check_columns(validation_rows)
    effects = learner.predict(validation_rows[list(champion.models.feature_columns)])
    scores = arm_qini(
        validation_rows[OUTCOME_PREFIX + "convert"].to_numpy(dtype=float),
        effects,
        validation_rows["offer_id"].to_numpy(dtype=object),
        [str(arm) for arm in learner.arms_],
        binary=True,
    )
    return {GATE_METRIC: _mean_score(scores)}


def uplift_gate(
    challenger: float, champion: float | None, champion_version: str | None, min_improvement: float = 0.0
) -> Any:
    """Promote when there is no champion or the challenger's held-out conversion Qini is higher."""
    from training.tracking import GateDecision

    criteria = {"primary": GATE_METRIC, "min_improvement": min_improvement}
    scores = {GATE_METRIC: challenger}
    if champion is None:
        return GateDecision(True, "no current champion", scores, None, None, criteria)
    detail = f"{GATE_METRIC} {challenger:.4f} vs champion v{champion_version} {champion:.4f}"
    if not np.isfinite(challenger) or challenger - champion <= min_improvement:
        return GateDecision(False, f"{detail}: not better by more than {min_improvement}", scores,
                            {GATE_METRIC: champion}, champion_version, criteria)  # fmt: skip
    return GateDecision(True, f"{detail}: better", scores, {GATE_METRIC: champion}, champion_version, criteria)


def log_uplift_run(
    result: UpliftResult,
    setup: UpliftSetup,
    *,
    data_hash: str,
    register: bool = True,
    promote: str = "gate",
) -> dict[str, Any]:
    """Log parameters, held-out Qini per outcome and arm, Qini curves and the trials; register
    `uplift` and move its champion alias when the gate (or `promote='always'`) says so."""
    import mlflow

    from features import registry
    from training import tracking
    from training.nbo_model import UpliftPyfunc

    if promote not in ("gate", "always", "never"):
        raise ValueError(f"--promote must be gate, always or never, got {promote!r}")
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_uplift_run needs an active MLflow run (mlflow.start_run())")
    feature_set = registry.feature_set(setup.feature_set)
    tracking.log_params(
        {
            "window_days": setup.window_days,
            "feature_set": feature_set.name,
            "feature_set_version": feature_set.version,
            "validation_campaigns": ",".join(result.models.metadata["validation_campaigns"]),
            "n_campaigns": len(result.rows.campaigns),
            "n_training_rows": int(result.train.sum()),
            "n_validation_rows": int(result.validation.sum()),
            "trials": setup.trials,
            "refit": setup.refit,
            "data_hash": data_hash,
            "arms": ",".join(result.models.arms),
        }
    )
    for outcome, choice in result.choices.items():
        tracking.log_params({"learner": choice.learner, **choice.params}, prefix=f"{outcome}.")
        tracking.log_figure(_qini_figure(result, outcome), f"plots/qini_{outcome}.png")
        mlflow.log_table(choice.trials.astype({column: str for column in choice.trials.columns
                                               if choice.trials[column].dtype.kind in "mM"}),
                         f"trials_{outcome}.json")  # fmt: skip
    tracking.log_metrics(result.metrics, prefix="validation_")
    mlflow.set_tags({"model": MODEL_NAME, "feature_set": feature_set.name, "data_hash": data_hash})
    example = result.rows.frame[result.rows.feature_columns].head(5)
    output = result.models.predict_columns(example)
    from mlflow.models import infer_signature

    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=UpliftPyfunc(result.models),
        signature=infer_signature(example, output),
        registered_model_name=MODEL_NAME if register else None,
        tags={"feature_set": feature_set.name},
    )
    version = None if not register or info.registered_model_version is None else str(info.registered_model_version)
    decision = None
    if version is not None:
        challenger = result.metrics[f"qini_{'convert'}"]
        if promote == "gate":
            current = tracking.champion_version(MODEL_NAME)
            champion = _champion_qini(result)
            decision = uplift_gate(
                challenger,
                None if champion is None else champion[GATE_METRIC],
                None if current is None else str(current.version),
            )
        else:
            decision = tracking.GateDecision(
                promote == "always", f"--promote {promote}: gate not applied", {GATE_METRIC: challenger}
            )
        tracking.record_gate_decision(decision, MODEL_NAME, version)
        if decision.promote:
            tracking.set_champion(MODEL_NAME, version)
    return {"run_id": run.info.run_id, "model_version": version, "decision": decision, "model_uri": info.model_uri}
