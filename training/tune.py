"""Optuna search over the churn model's LightGBM parameters, with pruning and nested MLflow runs.

The objective is the early-stopping validation log loss (held-out customers at the validation
snapshots, all before the calibration snapshot and long before the test snapshot), so the
test snapshot never steers the search. Trials report that loss as LightGBM adds trees and the
median pruner stops the hopeless ones early.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import lightgbm as lgb
import optuna

from training.churn import ChurnData, fit_churn_model

logger = logging.getLogger(__name__)

REPORT_EVERY = 10  # trees between reports to the pruner


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """One point of the search space (learning rate, tree shape, sampling, regularisation)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 3, 63, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 500, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 50.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
    }


def pruning_callback(trial: optuna.Trial, every: int = REPORT_EVERY) -> Callable[[Any], None]:
    """A LightGBM callback reporting validation log loss to `trial`; raises TrialPruned when told."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        iteration = env.iteration + 1
        if iteration % every:
            return
        for _, metric, value, _ in env.evaluation_result_list:
            if metric == "binary_logloss":
                trial.report(value, step=iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at {iteration} trees (validation log loss {value:.4f})")
                return

    callback.order = 30  # after early stopping's bookkeeping
    return callback


def tune_churn(
    data: ChurnData,
    n_trials: int,
    *,
    seed: int = 0,
    timeout_seconds: float | None = None,
    base_params: Mapping[str, Any] | None = None,
    log_trials: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> optuna.Study:
    """Run `n_trials` Optuna trials (TPE sampler, median pruner); each trial is a nested MLflow run.

    `log_trials=True` needs an active MLflow parent run. The study's `best_params` feed the
    final model.
    """
    if n_trials < 1:
        raise ValueError(f"--trials must be at least 1, got {n_trials}")
    base = {"refit": False, **dict(base_params or {})}

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **suggest_params(trial)}
        run = _nested_run(trial.number) if log_trials else None
        try:
            model = fit_churn_model(data, params, callbacks=[pruning_callback(trial)])
        except optuna.TrialPruned:
            _close_run(run, params, None, "pruned")
            raise
        except Exception:
            _close_run(run, params, None, "failed")
            raise
        trial.set_user_attr("best_iteration", model.best_iteration_)
        _close_run(run, params, model, "complete")
        return model.validation_log_loss_

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress is not None:
            progress(f"trial {trial.number + 1}/{n_trials} {trial.state.name.lower()}", (trial.number + 1) / n_trials)

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=3 * REPORT_EVERY),
        study_name="churn",
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, timeout=timeout_seconds, callbacks=[report])
    completed = [trial for trial in study.trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise ValueError(f"none of the {len(study.trials)} trials completed (all pruned or failed); run more trials")
    logger.info("best trial %d: validation log loss %.4f", study.best_trial.number, study.best_value)
    return study


def _nested_run(number: int) -> Any:
    import mlflow

    if mlflow.active_run() is None:
        raise RuntimeError("tune_churn(log_trials=True) needs an active MLflow parent run")
    return mlflow.start_run(run_name=f"trial-{number}", nested=True)


def _close_run(run: Any, params: Mapping[str, Any], model: Any, state: str) -> None:
    if run is None:
        return
    import mlflow

    from training.tracking import log_params

    try:
        log_params(params)
        mlflow.set_tag("trial_state", state)
        if model is not None:
            mlflow.log_metrics(
                {"validation_log_loss": model.validation_log_loss_, "best_iteration": float(model.best_iteration_)}
            )
    finally:
        mlflow.end_run(status="FINISHED" if state != "failed" else "FAILED")
