"""Real public data sets mapped onto the contract (see /work/shared/data/DATA.md).

Online Retail (UCI) becomes customers + transactions; the Hillstrom e-mail RCT becomes
customers, exposures (propensity 1/3), transactions and events. Outputs pass `validate_tables`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from features.contract import coerce_id, coerce_timestamp, validate_tables

logger = logging.getLogger(__name__)

ONLINE_RETAIL_COLUMNS = (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
    "Country",
)  # fmt: skip
HILLSTROM_COLUMNS = (
    "recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel",
    "segment", "visit", "conversion", "spend",
)  # fmt: skip
HILLSTROM_CAMPAIGN_ID = "hillstrom_2008"
HILLSTROM_ARMS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": "control"}
HILLSTROM_WINDOW = pd.Timedelta(days=14)
HILLSTROM_CUSTOMER_COLUMNS = ("recency", "history", "mens", "womens", "zip_code", "newbie", "channel")


def _require_columns(frame: pd.DataFrame, expected: tuple[str, ...], path: Path) -> None:
    missing = [column for column in expected if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks column(s) {', '.join(missing)} (columns found: "
            f"{', '.join(map(str, frame.columns))}); is it the right file?"
        )


# ----------------------------------------------------------------------------------------------
# Online Retail
# ----------------------------------------------------------------------------------------------


def _read_online_retail(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    raw = pd.read_parquet(path) if path.suffix != ".csv" else pd.read_csv(path)
    _require_columns(raw, ONLINE_RETAIL_COLUMNS, path)
    return raw


def _online_retail_lines(raw: pd.DataFrame) -> pd.DataFrame:
    """Purchase lines: a CustomerID, positive Quantity, not a cancellation (InvoiceNo 'C...')."""
    invoice = raw["InvoiceNo"].astype("str")
    keep = raw["CustomerID"].notna() & (raw["Quantity"] > 0) & ~invoice.str.startswith("C")
    lines = raw.loc[keep]
    ts, unparseable = coerce_timestamp(lines["InvoiceDate"])
    if unparseable.any():
        examples = lines.loc[unparseable, "InvoiceDate"].head(3).tolist()
        raise ValueError(f"unparseable InvoiceDate in {int(unparseable.sum())} rows: {examples}")
    return pd.DataFrame(
        {
            "customer_id": coerce_id(lines["CustomerID"]),
            "ts": ts,
            "amount": lines["Quantity"].astype("float64") * lines["UnitPrice"].astype("float64"),
            "order_id": invoice[keep],
            "product_id": lines["StockCode"].astype("str"),
            "quantity": lines["Quantity"].astype("int64"),
            "description": lines["Description"].astype("str"),
        }
    ).reset_index(drop=True)


def online_retail_tables(path: str | Path) -> dict[str, pd.DataFrame]:
    """Online Retail as contract `customers` and `transactions` (one row per invoice line).

    customers: every CustomerID (4,372), with the first `country` seen. transactions: purchase
    lines; the source repeats some (InvoiceNo, StockCode) pairs within an invoice, and those are
    summed into one line (quantity, amount; earliest ts) so the contract's line key is unique.
    """
    raw = _read_online_retail(path)
    known = raw.loc[raw["CustomerID"].notna(), ["CustomerID", "Country"]]
    customers = (
        pd.DataFrame({"customer_id": coerce_id(known["CustomerID"]), "country": known["Country"]})
        .drop_duplicates("customer_id", keep="first")
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
    lines = _online_retail_lines(raw)
    transactions = (
        lines.groupby(["order_id", "product_id"], sort=False, as_index=False)
        .agg(
            customer_id=("customer_id", "first"),
            ts=("ts", "min"),
            amount=("amount", "sum"),
            quantity=("quantity", "sum"),
            description=("description", "first"),
        )
        .loc[:, ["customer_id", "ts", "amount", "order_id", "product_id", "quantity", "description"]]
        .sort_values(["ts", "order_id", "product_id"], kind="stable")
        .reset_index(drop=True)
    )
    logger.info(
        "online retail: %d customers, %d purchase lines (%d repeated lines merged)",
        len(customers),
        len(transactions),
        len(lines) - len(transactions),
    )
    return validate_tables({"customers": customers, "transactions": transactions})


def online_retail_orders(path: str | Path) -> pd.DataFrame:
    """One row per purchase InvoiceNo (the R-churn protocol's unit): amount and quantity summed.

    A contract transactions table: customer_id, ts (the invoice's earliest line), amount,
    order_id, quantity, n_lines.
    """
    lines = _online_retail_lines(_read_online_retail(path))
    orders = (
        lines.groupby("order_id", sort=False, as_index=False)
        .agg(
            customer_id=("customer_id", "first"),
            ts=("ts", "min"),
            amount=("amount", "sum"),
            quantity=("quantity", "sum"),
            n_lines=("product_id", "size"),
        )
        .loc[:, ["customer_id", "ts", "amount", "order_id", "quantity", "n_lines"]]
        .sort_values(["ts", "order_id"], kind="stable")
        .reset_index(drop=True)
    )
    return validate_tables({"transactions": orders})["transactions"]


# ----------------------------------------------------------------------------------------------
# Hillstrom
# ----------------------------------------------------------------------------------------------


def hillstrom_frame(path: str | Path) -> pd.DataFrame:
    """The Hillstrom RCT with clean types: 0/1 ints, categories, and `offer_id` for the arm.

    The source's spelling (`Surburban`) is kept. Row i is customer_id str(i) in
    `hillstrom_tables`.
    """
    path = Path(path)
    raw = pd.read_csv(path)
    _require_columns(raw, HILLSTROM_COLUMNS, path)
    unknown = sorted(set(raw["segment"]) - set(HILLSTROM_ARMS))
    if unknown:
        raise ValueError(
            f"{path}: segment has unexpected values {unknown}; expected {sorted(HILLSTROM_ARMS)}"
        )
    frame = raw.loc[:, list(HILLSTROM_COLUMNS)].copy()
    for column in ("recency", "mens", "womens", "newbie", "visit", "conversion"):
        frame[column] = frame[column].astype("int64")
    for column in ("history", "spend"):
        frame[column] = frame[column].astype("float64")
    for column in ("history_segment", "zip_code", "channel", "segment"):
        frame[column] = frame[column].astype("category")
    frame["offer_id"] = frame["segment"].map(HILLSTROM_ARMS).astype("str")
    return frame


def hillstrom_tables(
    path: str | Path, assigned_at: str | pd.Timestamp = "2008-03-01"
) -> dict[str, pd.DataFrame]:
    """The Hillstrom RCT as contract tables, all customers assigned at `assigned_at`.

    exposures: one per customer (campaign hillstrom_2008, offer mens_email / womens_email /
    control, channel email, propensity 1/3). events: an e-mail `send` at `assigned_at` per
    e-mailed customer and a web `visit` per visitor. transactions: one per conversion with
    amount = spend. The data says only that visits and conversions happened within two weeks,
    not when, so both are placed at the window's midpoint (assigned_at + 7 days).
    """
    frame = hillstrom_frame(path)
    start = pd.Timestamp(assigned_at)
    if start.tzinfo is not None:
        start = start.tz_convert("UTC").tz_localize(None)
    outcome_at = start + HILLSTROM_WINDOW / 2
    customer_id = pd.Series(frame.index.astype("str"), index=frame.index, dtype="str")

    customers = pd.DataFrame({"customer_id": customer_id, "email_consent": True})
    for column in HILLSTROM_CUSTOMER_COLUMNS:
        values = frame[column]
        customers[column] = values.astype("str") if values.dtype == "category" else values

    exposures = pd.DataFrame(
        {
            "customer_id": customer_id,
            "campaign_id": HILLSTROM_CAMPAIGN_ID,
            "offer_id": frame["offer_id"],
            "assigned_at": start,
            "channel": "email",
            "propensity": 1 / 3,
        }
    )

    emailed = frame["offer_id"] != "control"
    sends = pd.DataFrame(
        {
            "customer_id": customer_id[emailed],
            "ts": start,
            "channel": "email",
            "event_type": "send",
            "campaign_id": HILLSTROM_CAMPAIGN_ID,
            "offer_id": frame.loc[emailed, "offer_id"],
        }
    )
    visited = frame["visit"] == 1
    visits = pd.DataFrame(
        {
            "customer_id": customer_id[visited],
            "ts": outcome_at,
            "channel": "web",
            "event_type": "visit",
            "campaign_id": pd.Series(pd.NA, index=frame.index[visited], dtype="str"),
            "offer_id": pd.Series(pd.NA, index=frame.index[visited], dtype="str"),
        }
    )
    events = pd.concat([sends, visits], ignore_index=True)

    converted = frame["conversion"] == 1
    transactions = pd.DataFrame(
        {
            "customer_id": customer_id[converted],
            "ts": outcome_at,
            "amount": frame.loc[converted, "spend"],
            "order_id": HILLSTROM_CAMPAIGN_ID + "_" + customer_id[converted],
        }
    )
    tables = {
        "customers": customers,
        "transactions": transactions,
        "events": events,
        "exposures": exposures,
    }
    return validate_tables({name: table.reset_index(drop=True) for name, table in tables.items()})
