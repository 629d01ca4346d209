"""Real data into the contract: Online Retail (R-churn protocol counts) and the Hillstrom RCT."""

from __future__ import annotations

import pandas as pd
import pytest

from features.adapters import (
    hillstrom_frame,
    hillstrom_tables,
    online_retail_orders,
    online_retail_tables,
)
from features.contract import validate_tables
from tests.conftest import shared_file

pytestmark = pytest.mark.realdata

AS_OF = pd.Timestamp("2011-09-10")


@pytest.fixture(scope="module")
def retail() -> dict[str, pd.DataFrame]:
    return online_retail_tables(shared_file("online_retail.parquet"))


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return online_retail_orders(shared_file("online_retail.parquet"))


@pytest.fixture(scope="module")
def raw_retail() -> pd.DataFrame:
    return pd.read_parquet(shared_file("online_retail.parquet"))


def test_online_retail_customers(retail):
    customers = retail["customers"]
    assert len(customers) == 4372
    assert customers["customer_id"].is_unique
    assert "12346" in set(customers["customer_id"])
    assert not customers["customer_id"].str.contains(".", regex=False).any()


def test_online_retail_transactions_keep_purchases_only(retail, raw_retail):
    transactions = retail["transactions"]
    assert not transactions["order_id"].str.startswith("C").any()
    assert (transactions["quantity"] >= 1).all() and (transactions["amount"] >= 0).all()
    assert transactions["ts"].min() == pd.Timestamp("2010-12-01 08:26")
    assert transactions["ts"].max() == pd.Timestamp("2011-12-09 12:50")
    purchases = raw_retail[
        raw_retail["CustomerID"].notna()
        & (raw_retail["Quantity"] > 0)
        & ~raw_retail["InvoiceNo"].str.startswith("C")
    ]
    # repeated (invoice, product) lines are merged, nothing is lost
    assert transactions["amount"].sum() == pytest.approx(
        (purchases["Quantity"] * purchases["UnitPrice"]).sum(), rel=1e-9
    )
    assert transactions["quantity"].sum() == purchases["Quantity"].sum()
    assert len(transactions) == len(purchases.drop_duplicates(["InvoiceNo", "StockCode"]))
    assert set(transactions["customer_id"]) <= set(retail["customers"]["customer_id"])


def test_online_retail_orders_and_the_r_churn_protocol(orders):
    assert orders["order_id"].is_unique
    assert len(orders) == 18536
    history = set(orders.loc[orders["ts"] < AS_OF, "customer_id"])
    assert len(history) == 3370
    # DATA.md: churn = no order in [2011-09-10, 2011-12-09), i.e. a 90-day horizon
    end = AS_OF + pd.Timedelta(days=90)
    assert end == pd.Timestamp("2011-12-09")
    active = set(orders.loc[(orders["ts"] >= AS_OF) & (orders["ts"] < end), "customer_id"])
    churn_rate = 1 - len(history & active) / len(history)
    assert churn_rate == pytest.approx(0.431, abs=0.0005)
    # counting the data's last day (orders on 2011-12-09) as activity gives 0.430 instead
    through_last_day = set(
        orders.loc[(orders["ts"] >= AS_OF) & (orders["ts"] < end + pd.Timedelta(days=1)), "customer_id"]
    )
    assert 1 - len(history & through_last_day) / len(history) == pytest.approx(0.430, abs=0.0005)


def test_online_retail_orders_sum_lines(retail, orders):
    by_order = retail["transactions"].groupby("order_id")["amount"].sum()
    merged = orders.set_index("order_id")["amount"]
    pd.testing.assert_series_equal(
        merged.sort_index(), by_order.sort_index(), check_names=False, check_index_type=False
    )


@pytest.fixture(scope="module")
def hillstrom() -> dict[str, pd.DataFrame]:
    return hillstrom_tables(shared_file("hillstrom.csv"))


@pytest.fixture(scope="module")
def hillstrom_raw() -> pd.DataFrame:
    return hillstrom_frame(shared_file("hillstrom.csv"))


def test_hillstrom_frame_types(hillstrom_raw):
    assert len(hillstrom_raw) == 64000
    assert hillstrom_raw["visit"].dtype == "int64" and hillstrom_raw["spend"].dtype == "float64"
    assert hillstrom_raw["zip_code"].dtype == "category"
    assert hillstrom_raw["offer_id"].value_counts().to_dict() == {
        "womens_email": 21387,
        "mens_email": 21307,
        "control": 21306,
    }


def test_hillstrom_customers_and_exposures(hillstrom, hillstrom_raw):
    customers, exposures = hillstrom["customers"], hillstrom["exposures"]
    assert len(customers) == len(exposures) == 64000
    assert customers["customer_id"].iloc[:3].tolist() == ["0", "1", "2"]
    for column in ("recency", "history", "mens", "womens", "zip_code", "newbie", "channel"):
        assert column in customers.columns
    assert customers["history"].tolist() == hillstrom_raw["history"].tolist()
    assert set(exposures["campaign_id"]) == {"hillstrom_2008"}
    assert set(exposures["channel"]) == {"email"}
    assert exposures["propensity"].eq(1 / 3).all()
    assert exposures["assigned_at"].eq(pd.Timestamp("2008-03-01")).all()
    assert exposures["offer_id"].tolist() == hillstrom_raw["offer_id"].tolist()


def test_hillstrom_outcomes_within_two_weeks(hillstrom, hillstrom_raw):
    start = pd.Timestamp("2008-03-01")
    transactions, events = hillstrom["transactions"], hillstrom["events"]
    assert len(transactions) == hillstrom_raw["conversion"].sum() == 578
    assert transactions["amount"].sum() == pytest.approx(hillstrom_raw["spend"].sum())
    assert transactions["ts"].between(start, start + pd.Timedelta(days=14), inclusive="left").all()
    sends = events[events["event_type"] == "send"]
    visits = events[events["event_type"] == "visit"]
    assert len(sends) == 21387 + 21307 and set(sends["channel"]) == {"email"}
    assert sends["ts"].eq(start).all()
    assert set(sends["offer_id"]) == {"mens_email", "womens_email"}
    assert len(visits) == hillstrom_raw["visit"].sum() and set(visits["channel"]) == {"web"}
    assert visits["ts"].between(start, start + pd.Timedelta(days=14), inclusive="left").all()
    # the tables pass the contract together (ids resolve, keys unique)
    assert set(validate_tables(hillstrom)) == {"customers", "transactions", "events", "exposures"}


def test_hillstrom_assigned_at_moves_everything():
    tables = hillstrom_tables(shared_file("hillstrom.csv"), assigned_at="2010-01-01")
    assert tables["exposures"]["assigned_at"].eq(pd.Timestamp("2010-01-01")).all()
    assert tables["transactions"]["ts"].min() >= pd.Timestamp("2010-01-01")


def test_hillstrom_wrong_file_is_named(tmp_path):
    path = tmp_path / "other.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) recency.*columns found: a"):
        hillstrom_frame(path)
