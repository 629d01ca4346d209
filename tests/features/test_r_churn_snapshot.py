"""Protocol R-churn's test snapshot on the real Online Retail data (DATA.md).

As of 2011-09-10 00:00 with a 90-day horizon the label window is [2011-09-10, 2011-12-09):
2011-09-10 + 90 days is 2011-12-09 00:00, which is before the data's last invoice
(2011-12-09 12:50), so the window lies inside the data and the protocol's orders on the last
day are, as it says, outside the window.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.adapters import online_retail_tables
from features.dataset import Dataset
from features.snapshot import build_snapshot
from tests.conftest import shared_file

AS_OF = pd.Timestamp("2011-09-10")

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def retail_tables() -> dict[str, pd.DataFrame]:
    path: Path = shared_file("online_retail.parquet")
    return online_retail_tables(path)


@pytest.fixture(scope="module")
def retail_snapshot(retail_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return build_snapshot(Dataset.from_frames(retail_tables), AS_OF, horizon_days=90)


def test_population_and_churn_rate_match_the_protocol(retail_snapshot: pd.DataFrame) -> None:
    assert len(retail_snapshot) == 3370
    assert retail_snapshot["customer_id"].is_unique
    assert retail_snapshot["label_churned"].mean() == pytest.approx(0.431, abs=5e-4)


def test_orders_and_labels_agree_with_a_direct_count(
    retail_snapshot: pd.DataFrame, retail_tables: dict[str, pd.DataFrame]
) -> None:
    lines = retail_tables["transactions"]
    history = lines[lines["ts"] < AS_OF]
    window = lines[(lines["ts"] >= AS_OF) & (lines["ts"] < pd.Timestamp("2011-12-09"))]
    by_customer = retail_snapshot.set_index("customer_id")
    orders = history.groupby("customer_id")["order_id"].nunique()
    pd.testing.assert_series_equal(by_customer["frequency"].loc[orders.index], orders, check_names=False)
    bought = window.groupby("customer_id")["order_id"].nunique()
    expected_purchases = bought.reindex(by_customer.index, fill_value=0)
    pd.testing.assert_series_equal(by_customer["label_purchases"], expected_purchases, check_names=False)
    assert by_customer["recency_days"].min() >= 0
    assert by_customer["recency_days"].min() < 1  # someone ordered on 2011-09-09


def test_transactions_only_families(retail_snapshot: pd.DataFrame) -> None:
    columns = set(retail_snapshot.columns)
    assert {"r_score", "rfm_segment", "overdue_ratio", "tenure_days", "preferred_hour", "lifecycle_stage"} <= columns
    assert not any(column.startswith("email_") for column in columns)
    assert set(retail_snapshot["rfm_segment"].unique()) == set("ABCDE")


def test_a_horizon_past_the_data_is_refused(retail_tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match=r"runs past the end of the data.*2011-12-09 12:50"):
        build_snapshot(Dataset.from_frames(retail_tables), AS_OF, horizon_days=91)
