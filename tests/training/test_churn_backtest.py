"""`nbo churn backtest` on order exports: JSON output, order summing, bad input, and protocol R-churn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app

AS_OF = "2024-09-01"
HORIZON = 60
ANONYMOUS_ROWS = 25
RETURN_ROWS = 40


def order_export(n_customers: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A line-level export: customers buy at their own rate until they silently leave."""
    rng = np.random.default_rng(seed)
    start, days, max_orders = pd.Timestamp("2024-01-01"), 366, 60
    rate = rng.gamma(2.0, 1 / 40, n_customers)  # orders per day
    first = rng.uniform(0, 200, n_customers)
    leaves = np.minimum(first + rng.exponential(150, n_customers), days)
    gaps = rng.exponential(1 / rate[:, None], (n_customers, max_orders))
    gaps[:, 0] = 0.0
    times = first[:, None] + np.cumsum(gaps, axis=1)
    customer, order = np.nonzero(times < leaves[:, None])
    order_days = times[customer, order]
    lines_per_order = rng.integers(1, 4, len(order_days))
    line_order = np.repeat(np.arange(len(order_days)), lines_per_order)
    frame = pd.DataFrame(
        {
            "Customer": (customer[line_order] + 1000).astype(float).astype(str),
            "When": (start + pd.to_timedelta(order_days[line_order], unit="D"))
            .floor("s")
            .strftime("%Y-%m-%d %H:%M:%S"),
            "Qty": rng.integers(1, 6, len(line_order)),
            "Price": rng.uniform(1, 20, len(line_order)).round(2),
            "Invoice": [f"INV{number}" for number in line_order],
        }
    )
    anonymous = frame.sample(ANONYMOUS_ROWS, random_state=seed).assign(Customer=None)
    returns = frame.sample(RETURN_ROWS, random_state=seed + 1).assign(Qty=lambda f: -f["Qty"])
    returns["Invoice"] = "C" + returns["Invoice"]
    return pd.concat([frame, anonymous, returns], ignore_index=True)


def expected_population(export: pd.DataFrame) -> tuple[int, float]:
    """Customers with a purchase before AS_OF and the share without one in the horizon (by hand)."""
    purchases = export[export["Customer"].notna() & (export["Qty"] > 0)]
    when = pd.to_datetime(purchases["When"])
    as_of = pd.Timestamp(AS_OF)
    known = set(purchases.loc[when < as_of, "Customer"])
    returning = set(purchases.loc[(when >= as_of) & (when < as_of + pd.Timedelta(days=HORIZON)), "Customer"])
    return len(known), len(known - returning) / len(known)


@pytest.fixture(scope="module")
def export_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    lines = order_export()
    lines.to_csv(folder / "lines.csv", index=False)
    purchases = lines[lines["Customer"].notna() & (lines["Qty"] > 0)]
    orders = (
        purchases.assign(Amount=purchases["Qty"] * purchases["Price"])
        .groupby("Invoice", as_index=False)
        .agg(Customer=("Customer", "first"), When=("When", "min"), Amount=("Amount", "sum"))
    )
    orders["Customer"] = orders["Customer"].astype("float64")  # as a CSV reader sees "1000.0"
    orders.to_parquet(folder / "orders.parquet", index=False)
    return lines, folder / "lines.csv", folder / "orders.parquet"


def backtest(*arguments: str) -> tuple[int, str]:
    """(exit code, stdout) on success, else (exit code, all output with line wrapping undone)."""
    result = CliRunner().invoke(app, ["churn", "backtest", *arguments])
    return result.exit_code, " ".join(result.output.split()) if result.exit_code else result.stdout


LINE_FLAGS = ("--customer-col", "Customer", "--ts-col", "When", "--quantity-col", "Qty", "--price-col", "Price")
COMMON = ("--as-of", AS_OF, "--horizon-days", str(HORIZON), "--feature-set", "rfm", "--json")


@pytest.fixture(scope="module")
def line_summary(export_files):
    _, lines_file, _ = export_files
    code, output = backtest("--transactions", str(lines_file), *LINE_FLAGS, "--order-col", "Invoice", *COMMON)
    assert code == 0, output
    return json.loads(output)


def test_backtest_prints_one_json_object_with_the_protocol_fields(line_summary, export_files):
    lines, _, _ = export_files
    customers, churn_rate = expected_population(lines)
    assert line_summary["n_customers"] == customers
    assert line_summary["churn_rate"] == pytest.approx(churn_rate)
    assert line_summary["rows_without_customer"] == ANONYMOUS_ROWS
    assert line_summary["rows_not_purchases"] == RETURN_ROWS
    assert line_summary["rows_used"] == line_summary["rows_read"] - ANONYMOUS_ROWS - RETURN_ROWS
    assert line_summary["as_of"] == "2024-09-01 00:00:00"
    # recency is nearly all there is to know in this export; both must find it
    assert line_summary["auc"] > 0.8 and line_summary["baseline_auc"] > 0.8
    assert 0.0 < line_summary["brier"] < 0.25
    assert line_summary["training_snapshots"] >= 3
    last_training = pd.Timestamp(line_summary["last_training_as_of"])
    assert last_training + pd.Timedelta(days=HORIZON) <= pd.Timestamp(AS_OF)


def test_lines_of_one_order_are_one_order(line_summary, export_files):
    _, _, orders_file = export_files
    code, output = backtest(
        "--transactions", str(orders_file), "--customer-col", "Customer", "--ts-col", "When",
        "--amount-col", "Amount", "--order-col", "Invoice", *COMMON,
    )  # fmt: skip
    assert code == 0, output
    orders = json.loads(output)
    for key in ("n_customers", "churn_rate", "auc", "brier", "baseline_auc", "n_training_rows"):
        assert orders[key] == pytest.approx(line_summary[key], abs=1e-9), key


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--as-of", "2030-01-01"), "outside the data"),
        (("--as-of", "2024-12-01"), "runs past the last transaction"),
        (("--as-of", "2024-01-20"), "training snapshot"),
        (("--as-of", "first of May"), "is not a timestamp"),
    ],
)
def test_bad_dates_are_reported_without_a_traceback(export_files, flags, message):
    _, lines_file, _ = export_files
    code, output = backtest("--transactions", str(lines_file), *LINE_FLAGS, "--horizon-days", str(HORIZON), *flags)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--customer-col", "Customer", "--ts-col", "Whenever", "--amount-col", "Price"),
            "no column(s) --ts-col Whenever",
        ),
        (("--customer-col", "Customer", "--ts-col", "When"), "give --amount-col, or --quantity-col and --price-col"),
        (
            ("--customer-col", "Customer", "--ts-col", "When", "--amount-col", "Price", "--quantity-col", "Qty"),
            "not both",
        ),
    ],
)
def test_bad_columns_are_reported(export_files, flags, message):
    _, lines_file, _ = export_files
    code, output = backtest("--transactions", str(lines_file), *flags, "--as-of", AS_OF)
    assert code == 2, output
    assert message in output


def test_too_few_customers_is_reported(export_files, tmp_path):
    lines, _, _ = export_files
    few = lines[lines["Customer"].isin(lines["Customer"].dropna().unique()[:15])]
    few.to_csv(tmp_path / "few.csv", index=False)
    code, output = backtest("--transactions", str(tmp_path / "few.csv"), *LINE_FLAGS, *COMMON)
    assert code == 2, output
    assert "churners" in output and "Traceback" not in output


def test_missing_file_is_reported(tmp_path):
    code, output = backtest("--transactions", str(tmp_path / "nope.csv"), *LINE_FLAGS, *COMMON)
    assert code == 2
    assert "is not a file" in output


# ------------------------------------------------------------------------------ R-churn
R_CHURN_FLAGS = (
    "--customer-col", "CustomerID", "--ts-col", "InvoiceDate", "--quantity-col", "Quantity",
    "--price-col", "UnitPrice", "--order-col", "InvoiceNo", "--as-of", "2011-09-10", "--horizon-days", "90", "--json",
)  # fmt: skip


@pytest.fixture(scope="module")
def r_churn(request):
    from tests.conftest import shared_file

    path = shared_file("online_retail.parquet")
    code, output = backtest("--transactions", str(path), *R_CHURN_FLAGS)
    assert code == 0, output
    return json.loads(output)


@pytest.mark.realdata
@pytest.mark.slow
def test_r_churn_population_and_published_baselines(r_churn):
    """The protocol's population and rate, and a model that beats recency and BG/NBD's AUC."""
    assert r_churn["n_customers"] == 3370
    assert r_churn["churn_rate"] == pytest.approx(0.431, abs=0.0005)
    assert r_churn["baseline_auc"] == pytest.approx(0.683, abs=0.001)  # DATA.md: recency alone 0.683
    assert r_churn["auc"] > 0.731  # BG/NBD (DATA.md)
    assert r_churn["auc"] > r_churn["baseline_auc"] + 0.04
    assert r_churn["brier"] < r_churn["baseline_brier"]
    assert r_churn["last_training_as_of"] == "2011-06-12 00:00:00"


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 4 target not reached: measured AUC 0.738 / Brier 0.214 (benchmarks/RESULTS.md, Churn)",
)
def test_r_churn_reaches_the_issue_target(r_churn):
    assert r_churn["auc"] >= 0.76
    assert r_churn["brier"] <= 0.20


def test_unparseable_timestamp_names_the_column(export_files, tmp_path):
    lines, _, _ = export_files
    broken = lines.copy()
    broken.loc[3, "When"] = "yesterday"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    code, output = backtest("--transactions", str(tmp_path / "broken.csv"), *LINE_FLAGS, *COMMON)
    assert code == 2, output
    assert "ts = When" in output and "not parseable as a timestamp" in output and "'yesterday'" in output
