"""`nbo uplift ...` and `nbo policy ...`: backtests of uplift ranking and of offer policies.

Thin: parse flags, read the table, call `training.backtest`, print a table or JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from training.cli_common import console, friendly_errors, stage_progress

uplift_app = typer.Typer(help="Uplift models: who responds because of the message.", no_args_is_help=True)
policy_app = typer.Typer(help="Offer policies: which message (or none) for whom.", no_args_is_help=True)


def _feature_list(features: str | None) -> list[str] | None:
    if not features:
        return None
    names = [name.strip() for name in features.split(",") if name.strip()]
    if not names:
        raise ValueError("--features is empty; give comma-separated column names")
    return names


@uplift_app.command("backtest")
def uplift_backtest(
    data: Path = typer.Option(..., help="Campaign table (CSV or Parquet), one row per customer."),
    treatment_col: str = typer.Option(..., help="Column holding the arm each customer got."),
    control: str = typer.Option(..., help="The control arm's label in --treatment-col."),
    outcome_col: str = typer.Option(..., help="Outcome column (0/1 for the Qini coefficient)."),
    arm: str = typer.Option(None, help="Only this arm against control (default: every arm)."),
    features: str = typer.Option(None, help="Comma-separated feature columns (default: all others)."),
    splits: int = typer.Option(10, help="Number of 50/50 splits (seeds 0..splits-1)."),
    learner: str = typer.Option(
        "auto", help="s, s-additive, s-shift, t, x, dr, or auto (CV Qini on each training half)."
    ),
    candidates: str = typer.Option(
        None, help="With --learner auto: comma-separated learners to choose from (default: all)."
    ),
    k: float = typer.Option(0.3, help="Share of customers for uplift@k."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """H-visit protocol: Qini and uplift@k per arm over stratified 50/50 splits.

    Example: nbo uplift backtest --data ../shared/data/hillstrom.csv --treatment-col segment \
        --control "No E-Mail" --outcome-col visit --arm "Womens E-Mail" \
        --features recency,history,mens,womens,newbie,zip_code,channel --splits 10 --json
    """
    from training.backtest import load_campaign_table, run_visit_backtest

    with friendly_errors():
        table = load_campaign_table(data)
        with stage_progress("H-visit backtest") as progress:
            result = run_visit_backtest(
                table, treatment_col=treatment_col, control=control, outcome_col=outcome_col,
                arm=arm, features=_feature_list(features), splits=splits, learner=learner,
                candidates=_feature_list(candidates), k=k,
                progress=progress,
            )
    result["data"] = str(data)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    metric = result["metric"]
    table_out = Table(title=f"H-visit on {data}: {splits} splits, learner {learner}")
    for column in ("arm", f"{metric} mean ± std", f"uplift@{k:g} mean ± std", "learners chosen"):
        table_out.add_column(column)
    for arm_label, summary in result["summary"].items():
        table_out.add_row(
            arm_label,
            f"{summary[metric]['mean']:.4f} ± {summary[metric]['std']:.4f}",
            f"{summary['uplift_at_k']['mean']:.4f} ± {summary['uplift_at_k']['std']:.4f}",
            ", ".join(f"{name} x{count}" for name, count in summary["learners"].items()),
        )
    console.print(table_out)


@policy_app.command("backtest")
def policy_backtest(
    data: Path = typer.Option(..., help="Campaign table (CSV or Parquet), one row per customer."),
    treatment_col: str = typer.Option(..., help="Column holding the arm each customer got."),
    control: str = typer.Option(..., help="The control (no message) label in --treatment-col."),
    outcome_col: str = typer.Option(..., help="Outcome to maximise, e.g. spend."),
    cost_per_send: float = typer.Option(..., help="Cost of every message sent, in outcome units."),
    features: str = typer.Option(None, help="Comma-separated feature columns (default: all others)."),
    splits: int = typer.Option(10, help="Number of 50/50 splits (seeds 0..splits-1)."),
    propensity_col: str = typer.Option(
        None, help="Probability of each row's arm (default: randomised test, the arm's share)."
    ),
    learner: str = typer.Option("s-additive", help="Value model: s, s-additive, s-shift or t."),
    min_z: float = typer.Option(2.0, help="Deviate from the best single arm only above this many standard errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """H-policy protocol: IPS value of a learned policy beside always-control and always-each-arm.

    Example: nbo policy backtest --data ../shared/data/hillstrom.csv --treatment-col segment \
        --control "No E-Mail" --outcome-col spend --cost-per-send 0.10 \
        --features recency,history,mens,womens,newbie,zip_code,channel --splits 10 --json
    """
    from training.backtest import load_campaign_table, run_policy_backtest

    with friendly_errors():
        table = load_campaign_table(data)
        with stage_progress("H-policy backtest") as progress:
            result = run_policy_backtest(
                table, treatment_col=treatment_col, control=control, outcome_col=outcome_col,
                cost_per_send=cost_per_send, features=_feature_list(features), splits=splits,
                propensity_col=propensity_col, learner=learner, min_z=min_z, progress=progress,
            )
    result["data"] = str(data)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    table_out = Table(title=f"H-policy on {data}: IPS value per customer, {splits} splits")
    table_out.add_column("policy")
    table_out.add_column("value mean ± std", justify="right")
    for name, summary in result["summary"].items():
        table_out.add_row(name, f"{summary['mean']:.4f} ± {summary['std']:.4f}")
    console.print(table_out)
