"""MLflow glue: where runs are stored, what every run logs, and the champion gate of the registry.

The default store is a SQLite file `mlflow.db` in the current folder (the project folder when
run from it); `MLFLOW_TRACKING_URI` overrides it. Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

TRACKING_DB_FILE = "mlflow.db"
CHAMPION_ALIAS = "champion"
GATE_TAG_PREFIX = "champion_gate"
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "top_decile_lift": True,
    "brier": False,
    "log_loss": False,
    "ece": False,
}


def default_tracking_uri(folder: str | Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else `sqlite:///<folder or cwd>/mlflow.db` (absolute)."""
    from_environment = os.environ.get("MLFLOW_TRACKING_URI")
    if from_environment:
        return from_environment
    database = (Path(folder) if folder is not None else Path.cwd()).resolve() / TRACKING_DB_FILE
    return f"sqlite:///{database}"


def setup_tracking(experiment: str, folder: str | Path | None = None) -> str:
    """Point MLflow at the tracking store, select (or create) `experiment`; return the URI.

    Also selects matplotlib's Agg backend, since runs render PNGs without a display.
    """
    import matplotlib
    import mlflow

    matplotlib.use("Agg")
    uri = default_tracking_uri(folder)
    mlflow.set_tracking_uri(uri)
    # Under `mlflow run` (it sets MLFLOW_RUN_ID) the project chose the experiment and the run. Not
    # MLFLOW_EXPERIMENT_ID: mlflow.set_experiment exports it, so any earlier call in this process
    # (another store, another experiment) would leave a stale id behind.
    if not os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_experiment(experiment)
    logger.info("MLflow tracking at %s, experiment %s", uri, experiment)
    return uri


def data_fingerprint(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a file, or of every file under a folder with its name.

    Two runs with the same fingerprint read byte-identical inputs. Hidden files are skipped.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist, so it cannot be fingerprinted")
    digest = hashlib.sha256()
    files = (
        [path]
        if path.is_file()
        else sorted(
            file
            for file in path.rglob("*")
            if file.is_file() and not any(p.startswith(".") for p in file.relative_to(path).parts)
        )
    )
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of a frame's values and column names (in-memory inputs)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log parameters (values stringified, None as 'none'), optionally under `prefix.`."""
    import mlflow

    mlflow.log_params({f"{prefix}{name}": ("none" if value is None else value) for name, value in params.items()})


def log_metrics(metrics: Mapping[str, float], prefix: str = "") -> None:
    """Log finite metrics under `prefix` (e.g. 'test_'); NaN/inf are skipped with a warning."""
    import mlflow

    finite = {}
    for name, value in metrics.items():
        if value is None or not math.isfinite(float(value)):
            logger.warning("metric %s%s is not finite (%s); not logged", prefix, name, value)
            continue
        finite[f"{prefix}{name}"] = float(value)
    mlflow.log_metrics(finite)


def log_figure(figure: Any, artifact_file: str) -> None:
    """Log a matplotlib figure as a PNG artifact and release its memory."""
    import mlflow
    from matplotlib import pyplot as plt

    try:
        mlflow.log_figure(figure, artifact_file, save_kwargs={"dpi": 110, "bbox_inches": "tight"})
    finally:
        plt.close(figure)


def log_sklearn_model(
    model: Any, input_example: pd.DataFrame, registered_name: str | None, tags: Mapping[str, str] | None = None
) -> Any:
    """Log a fitted classifier (pyfunc predicts probabilities) with signature and input example.

    With `registered_name` a new version of that registered model is created. Returns MLflow's
    ModelInfo (its `registered_model_version` is the new version).
    """
    import lightgbm
    import numpy
    import sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, model.predict_proba(input_example))
    requirements = [
        f"lightgbm=={lightgbm.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={numpy.__version__}",
    ]
    # mlflow warns on every pickle save; the reason is stated below, so keep the console quiet
    sklearn_logger = logging.getLogger("mlflow.sklearn")
    level = sklearn_logger.level
    sklearn_logger.setLevel(logging.ERROR)
    try:
        return _log_model(model, signature, input_example, registered_name, requirements, tags)
    finally:
        sklearn_logger.setLevel(level)


def _log_model(model, signature, input_example, registered_name, requirements, tags) -> Any:
    import mlflow

    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=input_example,
        registered_model_name=registered_name,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=requirements,
        # skops cannot store the project's own estimator classes; the model is only loaded
        # from this project's own registry, by code that trusts it
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        tags=dict(tags or {}),
    )


# ------------------------------------------------------------------------------ champion gate
@dataclass(frozen=True)
class GateDecision:
    """Whether a challenger replaces the champion, and the numbers the decision rests on."""

    promote: bool
    reason: str
    challenger: dict[str, float]
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    criteria: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the console and the run's tags."""
        verdict = "PROMOTE" if self.promote else "KEEP CHAMPION"
        return f"champion gate: {verdict} - {self.reason}"


def champion_gate(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    primary: str = "roc_auc",
    min_improvement: float = 0.0,
    guard: str | None = "brier",
    guard_tolerance: float = 0.005,
    champion_version: str | None = None,
) -> GateDecision:
    """Promote when there is no champion, or the challenger beats it on `primary` by more than
    `min_improvement` on the same test snapshot without being worse on `guard` by more than
    `guard_tolerance` (so a better ranking cannot hide broken calibration)."""
    for metric in (primary, guard):
        if metric is not None and metric not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown gate metric {metric!r}; choose from {', '.join(HIGHER_IS_BETTER)}")
    criteria = {
        "primary": primary,
        "min_improvement": min_improvement,
        "guard": guard,
        "guard_tolerance": guard_tolerance,
    }
    challenger = {name: float(value) for name, value in challenger.items()}
    if champion is None:
        return GateDecision(True, "no current champion", challenger, None, None, criteria)
    champion = {name: float(value) for name, value in champion.items()}

    def gain(metric: str) -> float:  # positive = challenger better
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        return sign * (challenger[metric] - champion[metric])

    primary_gain = gain(primary)
    detail = f"{primary} {challenger[primary]:.4f} vs champion v{champion_version} {champion[primary]:.4f}"
    if primary_gain <= min_improvement:
        return GateDecision(
            False,
            f"{detail}: not better by more than {min_improvement}",
            challenger,
            champion,
            champion_version,
            criteria,
        )
    if guard is not None and gain(guard) < -guard_tolerance:
        reason = (
            f"{detail}, but {guard} {challenger[guard]:.4f} vs {champion[guard]:.4f} "
            f"is worse by more than {guard_tolerance}"
        )
        return GateDecision(False, reason, challenger, champion, champion_version, criteria)
    return GateDecision(True, f"{detail}: better", challenger, champion, champion_version, criteria)


def champion_version(model_name: str) -> Any | None:
    """The registered model version holding the champion alias, or None when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def set_champion(model_name: str, version: str | int) -> None:
    """Move the champion alias to `version` of `model_name`."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(model_name, CHAMPION_ALIAS, str(version))
    logger.info("%s version %s is now the %s", model_name, version, CHAMPION_ALIAS)


def record_gate_decision(decision: GateDecision, model_name: str, version: str | int | None) -> None:
    """Log the gate's decision on the active run (tags + gate.json) and on the model version."""
    import mlflow
    from mlflow import MlflowClient

    tags = {
        f"{GATE_TAG_PREFIX}.decision": "promote" if decision.promote else "keep",
        f"{GATE_TAG_PREFIX}.reason": decision.reason,
        f"{GATE_TAG_PREFIX}.champion_version": decision.champion_version or "none",
    }
    mlflow.set_tags(tags)
    mlflow.log_dict(asdict(decision), "champion_gate.json")
    if version is not None:
        client = MlflowClient()
        for name, value in tags.items():
            client.set_model_version_tag(model_name, str(version), name, value)


def decision_json(decision: GateDecision) -> str:
    """The decision as indented JSON (for printing)."""
    return json.dumps(asdict(decision), indent=2, sort_keys=True)


# ------------------------------------------------------------------ promotion and rollback
PREVIOUS_CHAMPION_ALIAS = "previous-champion"
PROMOTION_TAG_PREFIX = "promotion"


def version_by_alias(model_name: str, alias: str) -> Any | None:
    """The registered model version holding `alias`, or None when no version holds it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def move_champion(model_name: str, version: str | int, note: str = "") -> str | None:
    """Make `version` the champion, keeping the replaced champion as `previous-champion`.

    Returns the replaced version (None when there was no champion). Both versions get
    `promotion.*` tags saying what happened, so the registry shows the history.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    current = version_by_alias(model_name, CHAMPION_ALIAS)
    previous = None if current is None else str(current.version)
    if previous is not None and previous != str(version):
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION_ALIAS, previous)
        client.set_model_version_tag(model_name, previous, f"{PROMOTION_TAG_PREFIX}.replaced_by", str(version))
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, str(version))
    client.set_model_version_tag(model_name, str(version), f"{PROMOTION_TAG_PREFIX}.replaced", previous or "none")
    if note:
        client.set_model_version_tag(model_name, str(version), f"{PROMOTION_TAG_PREFIX}.note", note[:5000])
    logger.info("%s version %s is now the %s (previous: %s)", model_name, version, CHAMPION_ALIAS, previous)
    return previous


def restore_previous_champion(model_name: str) -> tuple[str, str | None]:
    """Move `champion` back to the `previous-champion` version and drop that alias.

    Returns (restored version, version that was champion). ValueError when no previous
    champion is recorded (nothing was promoted with `nbo promote`, or it was already rolled back).
    """
    from mlflow import MlflowClient

    previous = version_by_alias(model_name, PREVIOUS_CHAMPION_ALIAS)
    if previous is None:
        raise ValueError(
            f"model {model_name!r} has no {PREVIOUS_CHAMPION_ALIAS!r} alias: nothing to roll back to "
            "(only `nbo promote` records one, and a rollback consumes it)"
        )
    client = MlflowClient()
    current = version_by_alias(model_name, CHAMPION_ALIAS)
    replaced = None if current is None else str(current.version)
    restored = str(previous.version)
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, restored)
    client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION_ALIAS)
    if replaced is not None:
        client.set_model_version_tag(model_name, replaced, f"{PROMOTION_TAG_PREFIX}.rolled_back_to", restored)
    client.set_model_version_tag(model_name, restored, f"{PROMOTION_TAG_PREFIX}.restored_from", replaced or "none")
    logger.info("%s: champion rolled back from version %s to %s", model_name, replaced, restored)
    return restored, replaced
