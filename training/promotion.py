"""Promotion and rollback of the deployable `nbo` model: `nbo promote`, `nbo rollback`.

`promote` compares a challenger version with the current champion on the configured gates and
moves the `champion` alias only when the challenger passes every one of them; the replaced
champion keeps the alias `previous-champion`, which `rollback` restores. Metrics are
**recomputed** for both versions on the same evidence, never read from their training runs
(those were measured on different test data): churn AUC and Brier on a labelled test snapshot,
the conversion Qini of the uplift models on the decision log's randomised decisions, and the
policy value estimated off-policy (doubly robust) on the decision log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from training.nbo_model import NboModel

logger = logging.getLogger(__name__)

__all__ = [
    "Gate",
    "GateResult",
    "PromotionGates",
    "PromotionResult",
    "compare_metrics",
    "comparison_table",
    "load_gates",
    "model_metrics",
    "promote",
    "rollback",
]

#: Gate name -> (metric name, higher is better, what the metric is).
GATE_METRICS: dict[str, tuple[str, bool, str]] = {
    "churn_auc": ("churn_auc", True, "churn ROC AUC on the test snapshot"),
    "churn_brier": ("churn_brier", False, "churn Brier score on the test snapshot"),
    "uplift_qini": ("uplift_qini", True, "conversion Qini (mean over arms) on the log's randomised decisions"),
    "policy_value": ("policy_value", True, "doubly robust policy value on the decision log"),
}
#: Which evidence each gate needs, named as the `nbo promote` flags that provide it.
GATE_EVIDENCE = {
    "churn_auc": "--test-snapshot",
    "churn_brier": "--test-snapshot",
    "uplift_qini": "--log and --data",
    "policy_value": "--log and --data",
}


class Gate(BaseModel):
    """One gate: whether it applies and how much worse than the champion still passes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="whether the challenger must pass this gate")
    tolerance: float = Field(default=0.0, ge=0, description="how much worse than the champion still passes")


class PromotionGates(BaseModel):
    """Every gate of `nbo promote` (YAML-loadable); defaults: not worse than the champion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    churn_auc: Gate = Field(default_factory=Gate, description="churn AUC not lower")
    churn_brier: Gate = Field(default_factory=Gate, description="churn Brier not higher")
    uplift_qini: Gate = Field(default_factory=Gate, description="uplift conversion Qini not lower")
    policy_value: Gate = Field(
        default_factory=lambda: Gate(tolerance=0.001), description="estimated policy value not lower beyond a tolerance"
    )
    policy_outcome: str = Field(default="convert", description="outcome the policy value measures")

    def enabled(self) -> list[str]:
        """Names of the gates that apply."""
        return [name for name in GATE_METRICS if getattr(self, name).enabled]


def load_gates(path: str | Path | None) -> PromotionGates:
    """Gates from a YAML file (top-level keys as in `PromotionGates`), or the defaults."""
    import yaml
    from pydantic import ValidationError

    if path is None:
        return PromotionGates()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gates file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return PromotionGates.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise ValueError(f"gates file {path} is not valid: {problems}") from None


@dataclass(frozen=True)
class GateResult:
    """One gate's numbers and verdict."""

    gate: str
    champion: float | None
    challenger: float | None
    higher_is_better: bool
    tolerance: float
    passed: bool
    note: str


@dataclass
class PromotionResult:
    """What `promote` decided, with every gate's result."""

    model_name: str
    challenger_version: str
    champion_version: str | None
    promoted: bool
    results: list[GateResult] = field(default_factory=list)
    replaced_version: str | None = None

    def summary(self) -> str:
        """One line for the console."""
        failed = [result.gate for result in self.results if not result.passed]
        if self.promoted:
            return f"promoted {self.model_name} version {self.challenger_version} to champion"
        return (
            f"refused: {self.model_name} version {self.challenger_version} did not pass {', '.join(failed)}; "
            f"champion stays version {self.champion_version}"
        )


def compare_metrics(
    challenger: Mapping[str, float], champion: Mapping[str, float] | None, gates: PromotionGates
) -> list[GateResult]:
    """Each enabled gate's verdict: passes when the challenger is not worse than the champion by
    more than the gate's tolerance; fails when either side lacks the metric (no evidence)."""
    results = []
    for name in gates.enabled():
        metric, higher, _ = GATE_METRICS[name]
        gate = getattr(gates, name)
        new = _finite(challenger.get(metric))
        if champion is None:
            results.append(GateResult(name, None, new, higher, gate.tolerance, True, "no current champion"))
            continue
        old = _finite(champion.get(metric))
        if new is None or old is None:
            side = "challenger" if new is None else "champion"
            note = f"no {metric} for the {side}: give {GATE_EVIDENCE[name]} (or disable the gate)"
            results.append(GateResult(name, old, new, higher, gate.tolerance, False, note))
            continue
        gain = (new - old) if higher else (old - new)
        passed = gain >= -gate.tolerance
        word = "higher" if higher else "lower"
        verdict = "better" if gain > 0 else "equal" if gain == 0 else "worse"
        note = f"{verdict} ({word} is better, tolerance {gate.tolerance:g})"
        results.append(GateResult(name, old, new, higher, gate.tolerance, passed, note))
    return results


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def model_metrics(
    model: NboModel,
    *,
    gates: PromotionGates,
    test_snapshot: pd.DataFrame | None = None,
    uplift_rows: pd.DataFrame | None = None,
    evaluation_rows: pd.DataFrame | None = None,
) -> dict[str, float]:
    """The gate metrics of one model, recomputed on the given evidence (absent evidence or a
    model part the model lacks leaves the metric out)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from features.contract import CONTROL_OFFER_ID
    from training.policy_evaluation import evaluate_policy
    from training.train_uplift import arm_qini

    metrics: dict[str, float] = {}
    enabled = gates.enabled()
    if test_snapshot is not None and model.churn_model is not None and {"churn_auc", "churn_brier"} & set(enabled):
        if "label_churned" not in test_snapshot.columns:
            raise ValueError("the test snapshot has no label_churned column; build it with --horizon-days")
        names = [str(name) for name in model.churn_model.feature_names_in_]
        probability = model.churn_model.predict_proba(test_snapshot[names])[:, 1]
        label = test_snapshot["label_churned"].to_numpy(dtype=int)
        metrics["churn_auc"] = float(roc_auc_score(label, probability))
        metrics["churn_brier"] = float(brier_score_loss(label, probability))
    learner = None if model.uplift_models is None else model.uplift_models.learners.get("convert")
    if uplift_rows is not None and learner is not None and "uplift_qini" in enabled:
        model.uplift_models.check_columns(uplift_rows)
        effects = learner.predict(uplift_rows[list(model.uplift_models.feature_columns)])
        offer_ids = uplift_rows["offer_id"].to_numpy(dtype=object)
        arms = [str(arm) for arm in learner.arms_ if arm in set(offer_ids) and arm != CONTROL_OFFER_ID]
        scores = arm_qini(
            uplift_rows["outcome_convert"].to_numpy(dtype=float), effects, offer_ids,
            [str(arm) for arm in learner.arms_], binary=True,
        )  # fmt: skip
        values = [scores[arm] for arm in arms if np.isfinite(scores[arm])]
        if values:
            metrics["uplift_qini"] = float(np.mean(values))
    if evaluation_rows is not None and "policy_value" in enabled:
        evaluation = evaluate_policy(model, evaluation_rows, outcome=gates.policy_outcome)
        metrics["policy_value"] = evaluation.doubly_robust.value
        metrics["policy_value_low"] = evaluation.doubly_robust.low
        metrics["policy_value_high"] = evaluation.doubly_robust.high
    return metrics


def comparison_table(result: PromotionResult) -> Any:
    """A Rich table: gate, champion, challenger, verdict."""
    from rich.table import Table

    champion = f"champion v{result.champion_version}" if result.champion_version else "champion (none)"
    table = Table(title=f"{result.model_name}: challenger v{result.challenger_version} vs {champion}")
    for column in ("gate", "champion", "challenger", "verdict", "note"):
        table.add_column(column, justify="right" if column in ("champion", "challenger") else "left")
    for row in result.results:
        table.add_row(
            row.gate, "-" if row.champion is None else f"{row.champion:.4f}",
            "-" if row.challenger is None else f"{row.challenger:.4f}",
            "[green]pass[/]" if row.passed else "[red]FAIL[/]", row.note,
        )  # fmt: skip
    return table


def promote(
    model_name: str,
    challenger_version: str,
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
    gates: PromotionGates,
    *,
    champion_version: str | None = None,
) -> PromotionResult:
    """Move `champion` to `challenger_version` only when every enabled gate passes; the
    replaced champion becomes `previous-champion`. Returns the decision with every gate."""
    from training import tracking

    if not gates.enabled():
        raise ValueError("every promotion gate is disabled; enable at least one in the gates file")
    if champion_version is not None and str(champion_version) == str(challenger_version):
        raise ValueError(f"version {challenger_version} of {model_name!r} is already the champion")
    results = compare_metrics(challenger_metrics, champion_metrics, gates)
    passed = all(r.passed for r in results)
    result = PromotionResult(model_name, str(challenger_version), champion_version, passed, results)
    if result.promoted:
        note = "; ".join(f"{r.gate}: {r.challenger} vs {r.champion}" for r in results)
        result.replaced_version = tracking.move_champion(model_name, challenger_version, note=note)
    logger.info("%s", result.summary())
    return result


def rollback(model_name: str) -> tuple[str, str | None]:
    """Restore the previous champion; returns (restored version, version that was champion)."""
    from training import tracking

    return tracking.restore_previous_champion(model_name)
