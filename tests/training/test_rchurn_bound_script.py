"""benchmarks/bench_rchurn_bound.py's feature builder and label on a tiny literal Online Retail extract."""

from __future__ import annotations

from types import ModuleType

import pandas as pd
import pytest

from tests.conftest import benchmark_module

AS_OF = pd.Timestamp("2011-02-01")


def _bench() -> ModuleType:
    return benchmark_module("bench_rchurn_bound")


def _raw() -> pd.DataFrame:
    """Customer 1 (UK): two orders, a cancellation, buys again in the horizon. Customer 2 (France): one
    December order, never again. Customer 3 buys again exactly at as_of, customer 4 exactly 90 days after."""
    rows = [
        ("A1", "X1", "christmas bauble red ", 2, "2011-01-01 10:00:00", 5.0, 1.0, "United Kingdom"),
        ("A1", "M1", "WHITE MUG", 1, "2011-01-01 10:00:00", 10.0, 1.0, "United Kingdom"),
        ("A2", "M1", "WHITE MUG", 3, "2011-01-21 12:30:00", 10.0, 1.0, "United Kingdom"),
        ("C9", "M1", "WHITE MUG", -1, "2011-01-22 08:00:00", 10.0, 1.0, "United Kingdom"),
        ("A3", "M1", "WHITE MUG", 1, "2011-02-15 09:00:00", 10.0, 1.0, "United Kingdom"),
        ("B1", "S1", "SANTA HAT", 4, "2010-12-10 09:00:00", 2.5, 2.0, "France"),
        ("D1", "M1", "WHITE MUG", 1, "2011-01-05 09:00:00", 10.0, 3.0, "Germany"),
        ("D2", "M1", "WHITE MUG", 1, "2011-02-01 00:00:00", 10.0, 3.0, "Germany"),
        ("E1", "M1", "WHITE MUG", 1, "2011-01-06 09:00:00", 10.0, 4.0, "Iceland"),
        ("E2", "M1", "WHITE MUG", 1, "2011-05-02 00:00:00", 10.0, 4.0, "Iceland"),
        ("F1", "M1", "WHITE MUG", 1, "2011-01-07 09:00:00", 10.0, None, "United Kingdom"),
        ("G1", "M1", "WHITE MUG", 1, "2011-02-02 09:00:00", 10.0, 5.0, "United Kingdom"),
    ]
    columns = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
    return pd.DataFrame(rows, columns=columns)


def test_features_and_label_on_a_literal_extract() -> None:
    bench = _bench()
    lines = bench.prepare_lines(_raw())
    features = bench.build_features(lines, AS_OF, ("base", "product", "dec", "dyn"))

    assert features.index.tolist() == [1, 2, 3, 4]  # no row without a CustomerID, nobody who only buys later
    assert features["churned"].tolist() == [0, 1, 0, 1]  # horizon [as_of, as_of + 90 days)
    first, second = features.loc[1], features.loc[2]
    assert first["n_orders"] == 2  # the cancellation is not an order
    assert first["recency"] == (10 * 24 + 11.5) / 24
    assert first["mean_gap"] == (20 * 24 + 2.5) / 24
    assert (first["monetary"], first["aov"], first["last_amount"]) == (50.0, 25.0, 30.0)
    assert (first["orders_14"], first["spend_14"], first["orders_30"], first["orders_60"]) == (1, 30.0, 1, 2)
    assert first["decay_30"] == 0.5 ** (((10 * 24 + 11.5) / 24) / 30) + 0.5 ** (((30 * 24 + 14) / 24) / 30)
    assert (first["distinct_products"], first["median_price"]) == (2, 10.0)
    assert first["seas_line_share"] == 1 / 3 and first["seas_spend_share"] == 0.2  # lower case
    assert (first["n_return_lines"], first["n_cancel_inv"], first["return_amt_share"]) == (1, 1, 0.2)
    assert (first["is_uk"], first["country"], first["dec10_orders"]) == (1.0, "United Kingdom", 0)
    assert (second["dec10_orders"], second["dec10_spend"], second["country"]) == (1, 10.0, "France")
    assert pd.isna(second["mean_gap"]) and second["seas_line_share"] == 1.0
    assert (features.loc[3, "n_orders"], features.loc[3, "recency"]) == (1, (26 * 24 + 15) / 24)  # as_of is future
    assert features.loc[4, "country"] == "Other"
    assert features[bench.feature_columns(("base", "product", "dec", "dyn"))].shape == (4, 51)


def test_missing_data_file_exits_with_a_clear_message(tmp_path) -> None:
    with pytest.raises(SystemExit, match=r"Online Retail not found at .*nowhere\.parquet: pass --data PATH"):
        _bench().main(["--data", str(tmp_path / "nowhere.parquet"), "--out", str(tmp_path / "out.json")])
