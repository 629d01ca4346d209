"""The decision sections of `nbo report`: the segment table and the decision summary.

Both read one batch of decisions (`models.policy.Decisions`) next to the decision input (the
snapshot with RFM segment and lifecycle stage); nothing is written.
"""

from __future__ import annotations

import pandas as pd

from models.policy import Decisions
from models.policy_config import NO_MESSAGE
from models.policy_summary import summarise_decisions
from training.report_figures import table_html
from training.report_models import Section

__all__ = ["align_decisions", "decisions_section", "segment_section", "segment_table"]

SEGMENT_COLUMN = "rfm_segment"
STAGE_COLUMN = "lifecycle_stage"


def align_decisions(computed: Decisions, table: pd.DataFrame) -> Decisions:
    """`computed` with its table replaced by a stored decisions table (e.g. `nbo decide`'s Parquet),
    row for row; the suppression matrix stays the recomputed one (a table does not store it)."""
    missing = [column for column in ("customer_id", "offer_id", "channel", "holdout") if column not in table.columns]
    if missing:
        raise ValueError(f"the decisions file lacks columns {missing}; write it with `nbo decide --out`")
    order = pd.Index(table["customer_id"].astype(str))
    wanted = computed.table["customer_id"].astype(str)
    where = order.get_indexer(wanted)
    if (where < 0).any() or len(table) != len(computed.table):
        raise ValueError(
            f"the decisions file has {len(table):,} customers but the data has {len(computed.table):,} as of the "
            f"report date ({int((where < 0).sum()):,} not in the file); use the file `nbo decide` wrote for the "
            "same --data and --as-of"
        )
    return Decisions(
        table=table.iloc[where].reset_index(drop=True),
        option_labels=computed.option_labels,
        suppression=computed.suppression,
        values=computed.values,
    )


def segment_table(frame: pd.DataFrame, decisions: Decisions) -> pd.DataFrame:
    """Per (RFM segment, lifecycle stage): customers, mean churn risk, share messaged and the offer mix."""
    missing = [column for column in (SEGMENT_COLUMN, STAGE_COLUMN) if column not in frame.columns]
    if missing:
        raise ValueError(f"the snapshot lacks {missing}: the segment table needs the rfm and lifecycle families")
    table = decisions.table
    joined = pd.DataFrame(
        {
            "rfm_segment": frame[SEGMENT_COLUMN].astype("string").fillna("none").to_numpy(),
            "lifecycle_stage": frame[STAGE_COLUMN].astype("string").fillna("none").to_numpy(),
            "churn_risk": table["churn_risk"].to_numpy(dtype=float),
            "offer": table["offer_id"].astype("string").to_numpy(),
        }
    )
    if not (frame["customer_id"].astype(str).to_numpy() == table["customer_id"].astype(str).to_numpy()).all():
        raise ValueError("the decisions and the snapshot list customers in a different order")
    keys = ["rfm_segment", "lifecycle_stage"]
    grouped = joined.groupby(keys, observed=True)
    result = grouped.agg(customers=("offer", "size"), mean_churn_risk=("churn_risk", "mean"))
    result["messaged"] = grouped["offer"].apply(lambda offers: float((offers != NO_MESSAGE).mean()))
    mix = pd.crosstab([joined["rfm_segment"], joined["lifecycle_stage"]], joined["offer"], normalize="index")
    mix.columns = [f"share {offer}" for offer in mix.columns]
    return result.join(mix).reset_index().sort_values(keys, kind="stable").reset_index(drop=True)


def segment_section(frame: pd.DataFrame, decisions: Decisions) -> Section:
    """The segment table (RFM A-E x lifecycle stage) as a report section."""
    section = Section("segments", "Segments: RFM x lifecycle stage")
    try:
        table = segment_table(frame, decisions)
    except ValueError as error:
        section.notes.append(str(error))
        return section
    section.tables.append(
        ("Customers, mean churn risk, share messaged and the decision mix (shares of the segment's customers)",
         table_html(table, "segment-table"))
    )  # fmt: skip
    section.notes.append("RFM segment A = best (recent, frequent, high spend) to E; 'none' = no orders yet.")
    return section


def decisions_section(decisions: Decisions, stored: bool) -> Section:
    """Offers and channels, expected incremental revenue and cost, suppressions by rule, holdout."""
    summary = summarise_decisions(decisions)
    section = Section("decisions", "Decision summary")
    share = summary.holdout / max(summary.customers, 1)
    totals = pd.DataFrame(
        {
            "figure": [
                "customers", "messages", "no message", "holdout (global, not messaged)", "holdout share",
                "explored (random among allowed)", "expected incremental profit", "expected incremental revenue",
                "expected cost",
            ],
            "value": [
                f"{summary.customers:,}", f"{summary.messages:,}", f"{summary.customers - summary.messages:,}",
                f"{summary.holdout:,}", f"{share:.1%}", f"{summary.explored:,}", f"{summary.expected_value:,.2f}",
                f"{summary.expected_incremental_revenue:,.2f}", f"{summary.expected_cost:,.2f}",
            ],
        }
    )  # fmt: skip
    section.tables.append(("Totals", table_html(totals, "decision-totals")))
    by_offer = summary.by_offer_channel.rename(
        columns={"offer_id": "offer", "expected_value": "expected profit",
                 "expected_incremental_revenue": "incremental revenue", "expected_cost": "cost"}
    )  # fmt: skip
    section.tables.append(("Messages by offer and channel", table_html(by_offer, "decision-offers", "{:,.2f}")))
    section.tables.append(
        ("Suppressed by rule (each option counted under the first rule that removed it)",
         table_html(summary.suppressed_by_rule, "decision-suppressions"))
    )  # fmt: skip
    section.metrics = {
        "decisions_customers": float(summary.customers),
        "decisions_messages": float(summary.messages),
        "decisions_holdout": float(summary.holdout),
        "decisions_expected_value": summary.expected_value,
        "decisions_expected_incremental_revenue": summary.expected_incremental_revenue,
        "decisions_expected_cost": summary.expected_cost,
    }
    if stored:
        section.notes.append(
            "Offers, money and holdout come from the decisions file; suppressions by rule were recomputed with the "
            "same model at the same time (a decisions file does not store the options a rule removed)."
        )
    return section
