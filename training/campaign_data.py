"""Reading a campaign for analysis: exposures from a data folder or the decision log, outcomes
from the folder's transactions and events (thin glue over `models.campaign_outcomes`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import ibis
import pandas as pd

from features.io import open_dataset
from models.campaign_outcomes import EVENT_OUTCOMES, campaign_outcomes, decision_log_arms, select_campaign

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


def world_end(data: Path) -> pd.Timestamp | None:
    """Where a simulated world's data stops (`world.json`), else None."""
    meta = Path(data) / "world.json"
    if meta.is_file():
        return pd.Timestamp(json.loads(meta.read_text())["end"])
    return None


def _window_rows(dataset, table: str, exposures: pd.DataFrame, window: pd.Timedelta, columns: list[str]):
    """Rows of `table` for the exposed customers between the first exposure and the last window's end."""
    rows = dataset[table]
    customers = ibis.memtable(pd.DataFrame({"customer_id": exposures["customer_id"].astype("str").unique()}))
    start = exposures["assigned_at"].min().to_pydatetime()
    stop = (exposures["assigned_at"].max() + window).to_pydatetime()
    chosen = rows.filter((rows.ts >= start) & (rows.ts < stop)).semi_join(customers, "customer_id")
    if table == "events":
        chosen = chosen.filter(chosen.event_type.isin(list(EVENT_OUTCOMES.values())))
    return chosen.select(*columns).to_pandas()


def load_campaign_outcomes(
    data: Path,
    *,
    campaign_id: str | None,
    window: pd.Timedelta,
    log: Path | None = None,
    data_end: pd.Timestamp | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, str]:
    """One campaign's exposures with their outcomes, and the campaign's id.

    Exposures come from `data`'s exposures table, or from the decision log `log` (whose random
    holdout becomes the control and whose no-message decisions the arm `no_message`).
    """
    def step(stage: str, fraction: float) -> None:
        if progress is not None:
            progress(stage, fraction)

    step("reading tables", 0.0)
    dataset = open_dataset(data)
    if log is not None:
        if not Path(log).is_file():
            raise FileNotFoundError(f"decision log {log} does not exist")
        from serving.decision_log import read_exposures

        exposures = decision_log_arms(read_exposures(log))
    elif dataset.has("exposures"):
        exposures = dataset["exposures"].to_pandas()
    else:
        raise ValueError(
            f"{data} has no exposures table: give a folder with exposures, --log decision_log.sqlite, "
            "or a flat campaign table with --treatment-col"
        )
    chosen = select_campaign(exposures, campaign_id)
    campaign = str(chosen["campaign_id"].iloc[0])
    step("reading orders", 0.3)
    transactions = _window_rows(dataset, "transactions", chosen, window, ["customer_id", "ts", "amount"])
    events = None
    if dataset.has("events"):
        step("reading events", 0.5)
        events = _window_rows(dataset, "events", chosen, window, ["customer_id", "ts", "event_type"])
    step("joining outcomes", 0.7)
    end = data_end if data_end is not None else world_end(data)
    outcomes = campaign_outcomes(chosen, transactions, window=window, events=events, data_end=end)
    logger.info("campaign %s: %d exposures, %d orders in windows", campaign, len(outcomes), len(transactions))
    return outcomes, campaign


def load_flat_table(path: Path) -> pd.DataFrame:
    """A flat campaign table (one row per customer) from CSV or Parquet."""
    from training.backtest import load_campaign_table

    if Path(path).is_dir():
        raise ValueError(
            f"{path} is a folder; --treatment-col is for a flat campaign file (CSV or Parquet). "
            "Drop --treatment-col to analyse a contract folder's exposures"
        )
    return load_campaign_table(path)
