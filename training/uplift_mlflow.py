"""Save, log and load a fitted uplift learner as an MLflow pyfunc model.

Existing uplift libraries leave persistence to the user; here a learner from `models/uplift.py`
(or `AutoUpliftLearner`) becomes a pyfunc whose `predict` takes the raw feature columns and
returns one `uplift__<arm>` column per arm, so `mlflow.pyfunc.load_model`, a BentoML service or
`spark_udf` can all use it. MLflow stays out of `models/`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from models.uplift_base import BaseUpliftLearner

logger = logging.getLogger(__name__)

__all__ = [
    "UpliftLearnerPyfunc",
    "load_uplift_learner",
    "load_uplift_model",
    "log_uplift_model",
    "save_uplift_model",
    "uplift_column",
]


def uplift_column(arm: Any) -> str:
    """Output column of an arm's estimated uplift."""
    return f"uplift__{arm}"


class UpliftLearnerPyfunc(mlflow.pyfunc.PythonModel):
    """A fitted uplift learner as a pyfunc: one `uplift__<arm>` column per arm, row for row."""

    def __init__(self, learner: BaseUpliftLearner) -> None:
        self.learner = learner

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Estimated uplift of every arm over control for each input row."""
        uplift = self.learner.predict(model_input)
        columns = [uplift_column(arm) for arm in self.learner.arms_]
        return pd.DataFrame(uplift, columns=columns)


def _fitted(learner: BaseUpliftLearner) -> BaseUpliftLearner:
    if not hasattr(learner, "arms_") or not hasattr(learner, "encoder_"):
        raise ValueError(f"{type(learner).__name__} is not fitted; call fit(X, y, treatment=...) first")
    return learner


def _signature(learner: BaseUpliftLearner) -> Any:
    """Inputs: the training feature columns (categorical ones as strings); outputs: uplift columns."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    encoder = learner.encoder_
    inputs = Schema(
        [
            ColSpec("string" if column in encoder.categories else "double", column)
            for column in encoder.columns
        ]
    )
    outputs = Schema([ColSpec("double", uplift_column(arm)) for arm in learner.arms_])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _requirements() -> list[str]:
    import lightgbm
    import sklearn

    return [
        f"lightgbm=={lightgbm.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def save_uplift_model(learner: BaseUpliftLearner, path: str | Path) -> None:
    """Write the fitted learner to a local MLflow model directory (which must not exist yet)."""
    learner = _fitted(learner)
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=UpliftLearnerPyfunc(learner),
        signature=_signature(learner),
        pip_requirements=_requirements(),
    )
    logger.info("saved %s uplift model to %s", type(learner).__name__, path)


def log_uplift_model(
    learner: BaseUpliftLearner,
    *,
    name: str = "uplift",
    registered_model_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Log the fitted learner to the active MLflow run; register it when a name is given.

    Returns MLflow's ModelInfo (`model_uri`, and `registered_model_version` when registered).
    """
    learner = _fitted(learner)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=UpliftLearnerPyfunc(learner),
        signature=_signature(learner),
        pip_requirements=_requirements(),
        registered_model_name=registered_model_name,
        tags=dict(tags or {}),
    )


def load_uplift_model(model_uri: str | Path) -> mlflow.pyfunc.PyFuncModel:
    """The pyfunc (a path, `runs:/...` or `models:/name@alias` URI); predict returns uplift columns."""
    return mlflow.pyfunc.load_model(str(model_uri))


def load_uplift_learner(model_uri: str | Path) -> BaseUpliftLearner:
    """The fitted learner itself, e.g. for `predict_frame` or its `arms_`."""
    python_model = load_uplift_model(model_uri).unwrap_python_model()
    if not isinstance(python_model, UpliftLearnerPyfunc):
        raise ValueError(f"{model_uri} is not an uplift learner model (found {type(python_model).__name__})")
    return python_model.learner
