"""`nbo campaign analyze` and `nbo campaign plan`: results against control groups, and sizing them.

Thin: parse flags, read the campaign (`training.campaign_data`), call `models.campaign` /
`models.campaign_power`, print Rich tables or JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from features.contract import CONTROL_OFFER_ID
from training.cli_common import console, error_console, friendly_errors, stage_progress

campaign_app = typer.Typer(help="Campaign analysis against control groups.", no_args_is_help=True)


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("--outcome-col is empty; give comma-separated column names")
    return names


def _contract_outcomes(table: pd.DataFrame, chosen: list[str] | None) -> list[str]:
    """Outcomes of a contract campaign: conversion, revenue, and event outcomes that occur."""
    available = ["conversion", "revenue"] + [
        name for name in ("visit", "unsubscribe") if name in table.columns and table[name].any()
    ]
    if chosen is None:
        return available
    unknown = [name for name in chosen if name not in table.columns]
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown}; a contract campaign has {available}")
    return chosen


def _format(value: float | None, digits: str = ".4f") -> str:
    return "–" if value is None else format(value, digits)


def _interval(low: float | None, high: float | None, digits: str = ".4f") -> str:
    return "–" if low is None or high is None else f"[{low:{digits}}, {high:{digits}}]"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+.1%}"


def _print_analysis(result: dict, title: str) -> None:
    confidence = f"{1 - result['alpha']:.0%}"
    console.print(f"[bold]{title}[/]")
    by_outcome: dict[str, list[dict]] = {}
    for row in result["comparisons"]:
        by_outcome.setdefault(row["outcome"], []).append(row)
    for outcome, rows in by_outcome.items():
        first = rows[0]
        label = "rate" if first["kind"] == "binary" else "per customer"
        table = Table(
            title=f"{outcome} ({label}); control {first['value_control']:.4g}, n={first['n_control']:,}"
        )
        for column in ("arm", "n", label, f"lift [{confidence} CI]", f"relative [{confidence} CI]",
                       "p-value", "MDE"):  # fmt: skip
            table.add_column(column, justify="left" if column == "arm" else "right")
        for row in rows:
            relative = _percent(row["relative_lift"])
            if row["relative_ci_low"] is not None:
                relative += f" [{row['relative_ci_low']:+.0%}, {row['relative_ci_high']:+.0%}]"
            lift = _format(row["absolute_lift"], "+.3g")
            lift += " " + _interval(row["absolute_ci_low"], row["absolute_ci_high"], "+.3g")
            table.add_row(
                row["arm"], f"{row['n_arm']:,}", _format(row["value_arm"], ".4g"), lift, relative,
                _format(row["p_value"], ".2g"),
                _format(row["minimum_detectable_lift"], ".2g") + (" !" if row["underpowered"] else ""),
            )  # fmt: skip
        console.print(table)
    if result["economics"]:
        money = Table(title="Incremental revenue: arm size x difference in revenue per customer")
        for column in ("arm", f"incremental [{confidence} CI]", "costs", f"net of costs [{confidence} CI]",
                       "margin x incr. - costs"):  # fmt: skip
            money.add_column(column, justify="left" if column == "arm" else "right")
        for row in result["economics"]:
            costs = None if row["send_cost"] is None else row["send_cost"] + row["redemption_cost"]
            incremental = _format(row["incremental_revenue"], ",.0f") + " " + _interval(
                row["incremental_revenue_ci_low"], row["incremental_revenue_ci_high"], ",.0f"
            )
            net = _format(row["net_incremental_revenue"], ",.0f")
            if row["net_incremental_revenue"] is not None:
                net += " " + _interval(row["net_ci_low"], row["net_ci_high"], ",.0f")
            money.add_row(
                row["arm"], incremental, _format(costs, ",.0f"), net, _format(row["net_incremental_margin"], ",.0f")
            )
        console.print(money)
    for note in result["warnings"]:
        error_console.print(f"[yellow]warning:[/] {note}", highlight=False)


LOG_WARNING = (
    "decision-log arms were chosen by the policy, not at random: only the holdout is randomised, "
    "so per-offer comparisons with it mix the offer's effect with who was targeted"
)


def _analyze(options: dict, progress) -> dict:
    """Read the campaign the flags describe, attach costs, compare every arm with control."""
    from features.catalog import DEFAULT_CATALOG_PATH, load_catalog
    from models.campaign import analyze_campaign
    from models.campaign_outcomes import attach_costs
    from training.campaign_data import load_campaign_outcomes, load_flat_table

    data, log, revenue_col = options["data"], options["log"], options["revenue_col"]
    if options["treatment_col"] is not None:
        if log is not None:
            raise ValueError("--log reads exposures from the decision log; drop --treatment-col to use it")
        table = load_flat_table(data)
        outcomes = _names(options["outcome_col"])
        if outcomes is None:
            raise ValueError("a flat table needs --outcome-col (e.g. visit,conversion,spend)")
        arm_col, control, campaign = options["treatment_col"], options["control"], str(data)
        catalog_path, conversion_col = options["catalog"], None
    else:
        end = None if options["data_end"] is None else pd.Timestamp(options["data_end"])
        table, campaign = load_campaign_outcomes(
            data, campaign_id=options["campaign_id"], window=pd.Timedelta(days=options["window_days"]),
            log=log, data_end=end, progress=progress,
        )  # fmt: skip
        outcomes = _contract_outcomes(table, _names(options["outcome_col"]))
        arm_col, control, revenue_col = "offer_id", CONTROL_OFFER_ID, revenue_col or "revenue"
        catalog_path, conversion_col = options["catalog"] or DEFAULT_CATALOG_PATH, "conversion"
    progress("costs", 0.8)
    margins = None
    if catalog_path is not None or options["cost_per_send"] is not None:
        table, margins = attach_costs(
            table, arm_col=arm_col, control=control,
            catalog=None if catalog_path is None else load_catalog(catalog_path),
            cost_per_send=options["cost_per_send"], conversion_col=conversion_col,
        )  # fmt: skip
    progress("statistics", 0.9)
    analysis = analyze_campaign(
        table, arm_col=arm_col, control=control, outcomes=outcomes, revenue_col=revenue_col,
        margins=margins, alpha=options["alpha"], power=options["power"],
    )  # fmt: skip
    result = {"campaign_id": campaign, "data": str(data), "log": None if log is None else str(log)}
    result.update(analysis.to_dict())
    if log is not None:
        result["warnings"].insert(0, LOG_WARNING)
    return result


@campaign_app.command("analyze")
def analyze(
    data: Path = typer.Option(
        ..., help="Contract folder (exposures, transactions), or a flat campaign CSV/Parquet with --treatment-col."
    ),
    campaign_id: str = typer.Option(None, help="Campaign to analyse (default: the only one, else the ids are listed)."),
    log: Path = typer.Option(
        None, help="Decision log (SQLite) to read exposures from instead; its random holdout is the control."
    ),
    window_days: float = typer.Option(14.0, help="Outcome window in days: orders in [assigned_at, +window)."),
    data_end: str = typer.Option(
        None, help="Where the data stops, to flag incomplete outcome windows (default: world.json's end, if any)."
    ),
    catalog: Path = typer.Option(None, help="Offers catalog YAML for costs and margins (default: the built-in one)."),
    cost_per_send: float = typer.Option(None, help="Cost of every message sent, overriding the catalog's send costs."),
    treatment_col: str = typer.Option(None, help="Flat table: column holding each customer's arm."),
    control: str = typer.Option(CONTROL_OFFER_ID, help="Flat table: the control arm's label in --treatment-col."),
    outcome_col: str = typer.Option(
        None, help="Comma-separated outcomes; 0/1 columns are rates, others means. "
        "Default: conversion,revenue and visit,unsubscribe when events have them."
    ),
    revenue_col: str = typer.Option(
        None, help="Outcome whose incremental total is money (default: revenue; flat tables: none unless given)."
    ),
    alpha: float = typer.Option(0.05, help="Significance level; intervals are 1 - alpha."),
    power: float = typer.Option(0.8, help="Power for the minimum detectable lift and the warning."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
) -> None:
    """Each offer against the control: rates and revenue per customer, lifts with CIs, p-values, net value.

    Example: nbo campaign analyze --data demo/world --campaign-id cmp01_20250130
    Example: nbo campaign analyze --data ../shared/data/hillstrom.csv --treatment-col segment \
        --control "No E-Mail" --outcome-col visit,conversion,spend --revenue-col spend --cost-per-send 0.10
    """
    options = dict(locals())
    with friendly_errors(), stage_progress("campaign analysis") as progress:
        result = _analyze(options, progress)
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    _print_analysis(result, f"Campaign {result['campaign_id']}: each arm vs {result['control']}")


@campaign_app.command("plan")
def plan(
    baseline_rate: float = typer.Option(..., help="Control group's expected conversion rate, e.g. 0.05."),
    min_lift: float = typer.Option(
        ..., help="Smallest lift worth detecting: absolute (0.01 = 1 point) unless --relative."
    ),
    relative: bool = typer.Option(False, "--relative", help="Read --min-lift as relative (0.1 = +10%)."),
    treated_share: float = typer.Option(0.9, help="Share of the campaign's customers who get an offer."),
    arms: int = typer.Option(1, help="Number of offers sharing the treated customers, each compared to control."),
    alpha: float = typer.Option(0.05, help="Two-sided significance level."),
    power: float = typer.Option(0.8, help="Probability of detecting the lift when it is real."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Size a control group (power analysis for a two-proportion test, statsmodels NormalIndPower).

    Example: nbo campaign plan --baseline-rate 0.05 --min-lift 0.01 --treated-share 0.9
    """
    from models.campaign_power import plan_control_group

    with friendly_errors():
        result = plan_control_group(
            baseline_rate, min_lift, relative=relative, treated_share=treated_share, arms=arms,
            alpha=alpha, power=power,
        ).to_dict()  # fmt: skip
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(
        f"Control group for {result['baseline_rate']:.4g} -> {result['target_rate']:.4g} "
        f"({result['relative_lift']:+.1%}), alpha {alpha:g}, power {power:.0%}, {treated_share:.0%} treated"
    )
    table = Table()
    table.add_column("group")
    table.add_column("customers", justify="right")
    table.add_row("control", f"{result['control_size']:,}")
    table.add_row(f"each of {arms} arm(s)" if arms > 1 else "treated", f"{result['treated_size_per_arm']:,}")
    if arms > 1:
        table.add_row("treated, all arms", f"{result['treated_size']:,}")
    table.add_row("total", f"{result['total_size']:,}")
    console.print(table)
