"""Readers: folders of CSV/Parquet, DuckDB files and single order exports, lazy and validated."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.contract import DataContractError
from features.dataset import Dataset
from features.io import TABLE_FILES, TransactionColumns, load_frames, open_dataset


def good_tables() -> dict[str, pd.DataFrame]:
    return {
        "customers": pd.DataFrame(
            {
                "customer_id": [1.0, 2.0, 3.0],  # float ids, as pandas reads an id column with gaps
                "signup_at": ["2010-01-01", "2010-06-01 12:00:00", "2010-12-31"],
                "email_consent": ["yes", "no", "yes"],
                "country": ["UK", "FR", "DE"],
            }
        ),
        "transactions": pd.DataFrame(
            {
                "customer_id": ["1", "2", "1", "3"],
                "ts": pd.to_datetime(
                    ["2011-07-01 12:00", "2011-07-02 08:00", "2011-07-03 09:30", "2011-07-04 10:00"]
                ).tz_localize("Europe/London"),
                "amount": [10.0, 5.5, 0.0, 20.0],
                "order_id": ["o1", "o2", "o3", "o4"],
                "quantity": [1, 2, 1, 3],
            }
        ),
        "events": pd.DataFrame(
            {
                "customer_id": ["1", "2"],
                "ts": ["2011-07-01 10:00:00", "2011-07-02T10:00:00+02:00"],
                "channel": ["Email", "web"],
                "event_type": ["open", "visit"],
            }
        ),
    }


def write_folder(folder: Path, tables: dict[str, pd.DataFrame], csv: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if name in csv:
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def test_folder_of_parquet_and_csv_gives_contract_types(tmp_path):
    folder = write_folder(tmp_path / "world", good_tables(), csv=("customers", "events"))
    (folder / "notes.txt").write_text("ignored")
    dataset = open_dataset(folder)
    assert isinstance(dataset, Dataset)
    assert sorted(dataset.tables) == ["customers", "events", "transactions"]
    customers = dataset["customers"].to_pandas()
    assert customers["customer_id"].tolist() == ["1", "2", "3"]
    assert customers["email_consent"].tolist() == [True, False, True]
    assert customers["country"].tolist() == ["UK", "FR", "DE"]  # extra columns pass through
    schema = dataset["transactions"].schema()
    assert str(schema["customer_id"]) == "string" and schema["ts"].is_timestamp()
    assert schema["ts"].timezone is None and str(schema["amount"]) == "float64"
    transactions = dataset["transactions"].to_pandas()
    # British summer time: 12:00 in London is 11:00 UTC
    assert transactions["ts"].iloc[0] == pd.Timestamp("2011-07-01 11:00")
    events = dataset["events"].to_pandas()
    assert events["ts"].tolist() == [pd.Timestamp("2011-07-01 10:00"), pd.Timestamp("2011-07-02 08:00")]
    assert events["channel"].tolist() == ["email", "web"]


def test_open_dataset_and_load_frames_agree(tmp_path):
    folder = write_folder(tmp_path / "world", good_tables(), csv=("customers",))
    lazy = open_dataset(folder)
    frames = load_frames(folder)
    for name, frame in frames.items():
        got = lazy[name].to_pandas()
        pd.testing.assert_frame_equal(
            got[list(frame.columns)], frame, check_dtype=False, check_exact=False
        )
        assert got["customer_id"].tolist() == frame["customer_id"].tolist()


def test_tables_are_read_lazily_in_place(tmp_path):
    folder = write_folder(tmp_path / "world", {"transactions": good_tables()["transactions"]})
    dataset = open_dataset(folder, validate=False)
    assert dataset["transactions"].count().execute() == 4
    bigger = pd.concat([good_tables()["transactions"]] * 3, ignore_index=True)
    bigger.to_parquet(folder / "transactions.parquet", index=False)
    # the view reads the file when queried, not when opened
    assert dataset["transactions"].count().execute() == 12


def test_duckdb_file(tmp_path):
    path = tmp_path / "shop.duckdb"
    tables = good_tables()
    with duckdb.connect(str(path)) as con:
        for name, frame in tables.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            con.unregister("frame")
        con.execute("CREATE TABLE audit_log AS SELECT 1 AS x")  # not a contract table: ignored
    dataset = open_dataset(path)
    assert sorted(dataset.tables) == ["customers", "events", "transactions"]
    assert dataset["customers"].to_pandas()["customer_id"].tolist() == ["1", "2", "3"]
    assert dataset["transactions"].to_pandas()["ts"].iloc[0] == pd.Timestamp("2011-07-01 11:00")
    assert load_frames(path)["events"]["channel"].tolist() == ["email", "web"]


def test_duckdb_file_without_transactions(tmp_path):
    path = tmp_path / "empty.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE customers AS SELECT '1' AS customer_id")
    with pytest.raises(DataContractError) as error:
        open_dataset(path)
    assert "transactions: the required table is missing in" in str(error.value)
    assert "tables found: customers" in str(error.value)


def order_export() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "CustomerID": [12346.0, 12347.0, 12346.0],
            "InvoiceDate": ["2011-01-18 10:01:00", "2011-01-19 11:00:00", "2011-02-01 09:00:00"],
            "Total": [77183.6, 12.5, 3.0],
            "InvoiceNo": ["541431", "541432", "541500"],
            "Country": ["United Kingdom", "Iceland", "United Kingdom"],
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_transactions_only_file_with_renamed_columns(tmp_path, suffix):
    path = tmp_path / f"orders{suffix}"
    frame = order_export()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    columns = TransactionColumns(customer="CustomerID", ts="InvoiceDate", amount="Total", order="InvoiceNo")
    dataset = open_dataset(path, transactions_columns=columns)
    assert list(dataset.tables) == ["transactions"]
    got = dataset["transactions"].to_pandas()
    assert list(got.columns) == ["customer_id", "ts", "amount", "order_id", "Country"]
    assert got["customer_id"].tolist() == ["12346", "12347", "12346"]
    assert got["order_id"].tolist() == ["541431", "541432", "541500"]
    assert got["ts"].iloc[0] == pd.Timestamp("2011-01-18 10:01")
    loaded = load_frames(path, transactions_columns=columns)["transactions"]
    assert loaded["customer_id"].tolist() == ["12346", "12347", "12346"]
    assert loaded["amount"].tolist() == [77183.6, 12.5, 3.0]


def test_transaction_columns_naming_an_absent_column(tmp_path):
    path = tmp_path / "orders.csv"
    order_export().to_csv(path, index=False)
    columns = TransactionColumns(customer="CustomerID", ts="OrderDate", amount="Total")
    with pytest.raises(ValueError) as error:
        open_dataset(path, transactions_columns=columns)
    message = str(error.value)
    assert "OrderDate (for ts)" in message
    assert "the file's columns are CustomerID, InvoiceDate, Total, InvoiceNo, Country" in message


def test_transactions_only_file_without_mapping_lists_columns(tmp_path):
    path = tmp_path / "orders.csv"
    order_export().to_csv(path, index=False)
    with pytest.raises(DataContractError) as error:
        open_dataset(path)
    message = str(error.value)
    assert "missing required columns customer_id, ts, amount" in message
    assert "columns found: CustomerID, InvoiceDate, Total, InvoiceNo, Country" in message


def test_folder_without_transactions_names_folder_and_contents(tmp_path):
    folder = write_folder(tmp_path / "world", {"customers": good_tables()["customers"]})
    (folder / "orders.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataContractError) as error:
        open_dataset(folder)
    message = str(error.value)
    assert f"no transactions file in {folder}" in message
    assert "found: customers.parquet, orders.csv" in message
    assert "transactions.parquet or transactions.csv" in message


def test_a_table_given_twice_is_an_error(tmp_path):
    folder = write_folder(tmp_path / "world", good_tables())
    good_tables()["events"].to_csv(folder / "events.csv", index=False)
    with pytest.raises(ValueError, match=r"table events is given twice .*events.parquet, events.csv"):
        open_dataset(folder)


def test_unreadable_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(tmp_path / "nowhere")
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    with pytest.raises(ValueError, match="cannot tell how to read"):
        open_dataset(odd)


def bad_tables() -> dict[str, pd.DataFrame]:
    tables = good_tables()
    tables["transactions"] = pd.DataFrame(
        {
            "customer_id": ["1", "2", "9", None, "1"],
            "ts": ["2011-01-01 10:00", "2011-01-02", "soon", "2011-01-03", "2011-01-04"],
            "amount": [1.0, -2.0, np.nan, 3.0, 4.0],
            "order_id": ["a", "b", "c", "a", "a"],
            "product_id": ["p", "p", "p", "p", "p"],
            "quantity": [1, 0, 2, 1, 1],
        }
    )
    tables["events"] = tables["events"].assign(channel=["email", "fax"])
    tables["exposures"] = pd.DataFrame(
        {
            "customer_id": ["1", "1"],
            "campaign_id": ["c", "c"],
            "offer_id": ["a", "control"],
            "assigned_at": ["2011-01-01", "2011-01-01"],
            "propensity": [0.0, 0.5],
        }
    )
    return tables


def test_validation_in_duckdb_reports_like_pandas(tmp_path):
    folder = write_folder(tmp_path / "bad", bad_tables(), csv=("events",))
    with pytest.raises(DataContractError) as in_duckdb:
        open_dataset(folder)
    with pytest.raises(DataContractError) as in_pandas:
        load_frames(folder)

    def summary(error):
        return {
            (p.table, p.column, p.issue, p.rows, tuple(row for row, _ in p.examples), p.hint)
            for p in error.value.problems
        }

    assert summary(in_duckdb) == summary(in_pandas)
    found = {(p.table, p.column, p.issue): p for p in in_duckdb.value.problems}
    assert found["transactions", "amount", "negative or NaN"].rows == 2
    assert found["transactions", "ts", "not parseable as a timestamp"].examples == ((2, "soon"),)
    assert found["transactions", "customer_id", "for a customer_id not in customers"].examples == (
        (2, "9"),
    )
    key = found["transactions", "order_id, product_id", "duplicated on the key (order_id, product_id)"]
    assert key.rows == 3 and key.examples[0] == (0, ("a", "p"))
    assert found["events", "channel", "not one of email, sms, push, web, app"].examples == ((1, "fax"),)
    assert found["exposures", "propensity", "outside (0, 1]"].rows == 1
    assert found["transactions", "quantity", "below 1"].rows == 1


def test_validation_can_be_switched_off(tmp_path):
    folder = write_folder(tmp_path / "bad", bad_tables())
    dataset = open_dataset(folder, validate=False)
    assert dataset["transactions"].count().execute() == 5


def test_an_existing_connection_is_used(tmp_path):
    import ibis

    con = ibis.duckdb.connect()
    folder = write_folder(tmp_path / "world", good_tables())
    first = open_dataset(folder, con=con)
    second = open_dataset(folder, con=con)  # opening twice on one connection does not collide
    assert first.con is con and second.con is con
    assert second["transactions"].count().execute() == 4


def test_table_file_names():
    assert TABLE_FILES["transactions"][:2] == ("transactions.parquet", "transactions.pq")
    assert "customers.csv" in TABLE_FILES["customers"]


def test_a_late_odd_value_in_a_csv_is_a_contract_problem_not_a_read_error(tmp_path):
    # DuckDB sniffs CSV types from a sample; a bad value past it must still be reported nicely
    rows = 30_000
    frame = pd.DataFrame(
        {"customer_id": [str(i % 50) for i in range(rows)], "ts": "2011-01-01", "amount": "1.5"}
    )
    frame.loc[rows - 1, "amount"] = "abc"
    folder = tmp_path / "late"
    folder.mkdir()
    frame.to_csv(folder / "transactions.csv", index=False)
    for read in (open_dataset, load_frames):
        with pytest.raises(DataContractError) as error:
            read(folder)
        assert str(error.value).startswith(
            f"transactions.amount: 1 row is not a number (examples: row {rows - 1}: 'abc')"
        )
