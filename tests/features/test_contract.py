"""The data contract: coercion to contract types and readable, complete error messages."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features.contract import (
    REQUIRED_COLUMNS,
    TABLES,
    DataContractError,
    Problem,
    check_before,
    validate_table,
    validate_tables,
)


def transactions(**overrides) -> pd.DataFrame:
    """A small valid transactions table; keyword arguments replace columns."""
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "a", "c"],
            "ts": ["2011-01-01 10:00:00", "2011-01-02 11:00:00", "2011-01-05", "2011-02-01"],
            "amount": [10.0, 5.5, 0.0, 20.0],
            "order_id": ["o1", "o2", "o3", "o4"],
            "product_id": ["p1", "p1", "p2", "p1"],
            "quantity": [1, 2, 1, 3],
        }
    )
    return frame.assign(**overrides)


def customers(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "signup_at": ["2010-01-01", "2010-06-01", "2010-12-31"],
            "timezone": ["Europe/London", "America/New_York", "UTC"],
            "email_consent": [True, False, True],
        }
    )
    return frame.assign(**overrides)


def events(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "ts": ["2011-01-01", "2011-01-02", "2011-01-03"],
            "channel": ["email", "web", "sms"],
            "event_type": ["open", "visit", "click"],
        }
    )
    return frame.assign(**overrides)


def exposures(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "campaign_id": ["spring", "spring", "spring"],
            "offer_id": ["ten_off", "control", "ten_off"],
            "assigned_at": ["2011-03-01", "2011-03-01", "2011-03-01"],
            "propensity": [0.5, 0.5, 0.5],
        }
    )
    return frame.assign(**overrides)


def problems_of(error: pytest.ExceptionInfo[DataContractError]) -> dict[tuple, Problem]:
    return {(p.table, p.column, p.issue): p for p in error.value.problems}


# --- messages ----------------------------------------------------------------------------------


def test_amount_message_reads_like_the_spec():
    amounts = [1.0] * 13
    amounts[4], amounts[9], amounts[12] = -5.0, np.nan, -0.01
    frame = pd.DataFrame(
        {"customer_id": [str(i) for i in range(13)], "ts": ["2011-01-01"] * 13, "amount": amounts}
    )
    with pytest.raises(DataContractError) as error:
        validate_table("transactions", frame)
    assert str(error.value) == (
        "transactions.amount: 3 rows are negative or NaN (examples: row 4: -5.0, row 9: nan, "
        "row 12: -0.01). Hint: amounts are order values >= 0; drop refunds or map them to a "
        "separate table."
    )
    assert isinstance(error.value, ValueError)
    (problem,) = error.value.problems
    assert (problem.table, problem.column, problem.rows) == ("transactions", "amount", 3)
    assert [row for row, _ in problem.examples] == [4, 9, 12]


def test_missing_required_column_lists_the_columns_found():
    frame = pd.DataFrame({"CustomerID": [1], "InvoiceDate": ["2011-01-01"], "amount": [1.0]})
    with pytest.raises(DataContractError) as error:
        validate_table("transactions", frame)
    message = str(error.value)
    assert message.startswith("transactions: missing required columns customer_id, ts")
    assert "columns found: CustomerID, InvoiceDate, amount" in message
    assert "Hint: rename your columns" in message and "TransactionColumns" in message


def test_unparseable_timestamp_names_rows_and_values():
    frame = transactions(ts=["2011-01-01", "yesterday", "2011-01-03", "31/02/2011 25:00"])
    with pytest.raises(DataContractError) as error:
        validate_table("transactions", frame)
    message = str(error.value)
    assert "transactions.ts: 2 rows are not parseable as a timestamp" in message
    assert "row 1: 'yesterday'" in message and "row 3: '31/02/2011 25:00'" in message
    assert "Hint: write timestamps as ISO 8601" in message
    assert "null" not in message  # the unparseable rows are not reported a second time


def test_null_required_values_are_reported_once():
    frame = transactions(customer_id=["a", None, "b", None])
    with pytest.raises(DataContractError) as error:
        validate_table("transactions", frame)
    (problem,) = error.value.problems
    assert (problem.column, problem.rows, problem.issue) == ("customer_id", 2, "null (missing)")
    assert "give them an id" in problem.hint


def test_duplicate_keys_in_customers_transactions_and_exposures():
    with pytest.raises(DataContractError) as error:
        validate_tables(
            {
                "customers": customers(customer_id=["a", "b", "b"]),
                "transactions": transactions(order_id=["o1", "o1", "o1", "o2"]),
                "exposures": exposures(customer_id=["a", "a", "b"]),
            }
        )
    found = {p.table: p for p in error.value.problems if p.issue.startswith("duplicated")}
    assert set(found) == {"customers", "transactions", "exposures"}
    assert found["customers"].rows == 2
    assert "customers.customer_id: 2 rows are duplicated on the key (customer_id)" in str(
        found["customers"]
    )
    # (o1, p1) appears at rows 0 and 1; row 2 is (o1, p2) and unique
    assert found["transactions"].rows == 2
    assert found["transactions"].examples == ((0, ("o1", "p1")), (1, ("o1", "p1")))
    assert "sum quantity and amount per order line" in found["transactions"].hint
    assert found["exposures"].examples == ((0, ("a", "spring")), (1, ("a", "spring")))


def test_transaction_key_ignores_rows_without_order_or_product():
    frame = transactions(order_id=[None, None, "o3", "o4"], product_id=["p1", "p1", None, None])
    assert len(validate_table("transactions", frame)) == 4


def test_unknown_customer_in_events_transactions_and_exposures():
    with pytest.raises(DataContractError) as error:
        validate_tables(
            {
                "customers": customers(),
                "transactions": transactions(customer_id=["a", "zz", "a", "yy"]),
                "events": events(customer_id=["a", "b", "nobody"]),
                "exposures": exposures(customer_id=["x1", "b", "c"]),
            }
        )
    found = {
        p.table: p for p in error.value.problems if p.issue == "for a customer_id not in customers"
    }
    assert found["transactions"].rows == 2
    assert found["transactions"].examples == ((1, "zz"), (3, "yy"))
    assert found["events"].examples == ((2, "nobody"),)
    assert found["exposures"].examples == ((0, "x1"),)
    assert "add these customers to customers" in str(found["events"])


def test_empty_table():
    with pytest.raises(DataContractError) as error:
        validate_tables({"transactions": transactions().iloc[:0], "events": events().iloc[:0]})
    text = str(error.value)
    assert "transactions: the table is empty (0 rows)" in text
    assert "events: the table is empty (0 rows). Hint: leave events out" in text


@pytest.mark.parametrize(
    ("table", "frame", "column", "bad"),
    [
        ("events", events(channel=["email", "fax", "pigeon"]), "channel", "'fax'"),
        ("events", events(event_type=["open", "read", "visit"]), "event_type", "'read'"),
        (
            "subscriptions",
            pd.DataFrame({"customer_id": ["a", "b"], "status": ["active", "frozen"]}),
            "status",
            "'frozen'",
        ),
    ],
)
def test_values_outside_an_enum(table, frame, column, bad):
    with pytest.raises(DataContractError) as error:
        validate_table(table, frame)
    (problem,) = error.value.problems
    assert problem.column == column and problem.issue.startswith("not one of")
    assert bad in str(problem) and f"map your {column} values" in problem.hint


def test_enum_values_are_compared_lower_case():
    out = validate_table("events", events(channel=[" Email", "WEB", "sms"]))
    assert out["channel"].tolist() == ["email", "web", "sms"]


def test_propensity_outside_zero_one():
    with pytest.raises(DataContractError) as error:
        validate_table("exposures", exposures(propensity=[0.0, 1.0, 1.2]))
    (problem,) = error.value.problems
    assert str(problem).startswith(
        "exposures.propensity: 2 rows are outside (0, 1] (examples: row 0: 0.0, row 2: 1.2)"
    )


def test_other_value_rules():
    frame = transactions(quantity=[1, 0, 2.5, "x"], discount_amount=[0.0, -1.0, None, 2.0])
    with pytest.raises(DataContractError) as error:
        validate_table("transactions", frame)
    found = problems_of(error)
    assert found["transactions", "quantity", "not a whole number"].examples == ((2, 2.5), (3, "x"))
    assert found["transactions", "quantity", "below 1"].examples == ((1, 0),)
    assert found["transactions", "discount_amount", "negative"].rows == 1


def test_booleans_and_time_zones():
    frame = customers(email_consent=["yes", "maybe", "0"], timezone=["UTC", "Mars/Olympus", None])
    with pytest.raises(DataContractError) as error:
        validate_table("customers", frame)
    found = problems_of(error)
    assert found["customers", "email_consent", "not a boolean"].examples == ((1, "maybe"),)
    assert found["customers", "timezone", "not an IANA time zone name"].rows == 1


def test_all_problems_of_all_tables_are_raised_together():
    with pytest.raises(DataContractError) as error:
        validate_tables(
            {
                "transactions": transactions(amount=[1.0, -1.0, 2.0, 3.0]),
                "events": events(channel=["email", "fax", "web"]),
                "exposures": exposures(propensity=[0.5, 2.0, 0.5]),
            }
        )
    assert {p.table for p in error.value.problems} == {"transactions", "events", "exposures"}
    assert str(error.value).startswith("3 problems in the input data:\n  - ")


def test_transactions_table_is_required():
    with pytest.raises(DataContractError, match="transactions: the required table is missing"):
        validate_tables({"customers": customers()})


def test_unknown_table_name_is_rejected():
    with pytest.raises(ValueError, match=r"unknown table\(s\) 'orders'"):
        validate_tables({"transactions": transactions(), "orders": transactions()})


# --- coercion ----------------------------------------------------------------------------------


def test_coercion_to_contract_types():
    frame = pd.DataFrame(
        {
            "customer_id": [12346.0, 12347.0, np.nan],
            "ts": ["2011-01-01 10:00:00", "2011-01-01T10:00:00+02:00", "2011-01-02"],
            "amount": ["1.5", "2", "0"],
            "note": ["kept", "as", "is"],
        }
    )
    with pytest.raises(DataContractError, match=r"customer_id: 1 row is null"):
        validate_table("transactions", frame)
    out = validate_table("transactions", frame.iloc[:2])
    assert out["customer_id"].tolist() == ["12346", "12347"]
    assert pd.api.types.is_string_dtype(out["customer_id"])
    assert out["ts"].dtype == "datetime64[us]"
    assert out["ts"].tolist() == [pd.Timestamp("2011-01-01 10:00"), pd.Timestamp("2011-01-01 08:00")]
    assert out["amount"].dtype == "float64" and out["amount"].tolist() == [1.5, 2.0]
    assert out["note"].tolist() == ["kept", "as"]


def test_integer_ids_and_tz_aware_timestamps():
    ts = pd.to_datetime(["2011-07-01 12:00", "2011-07-02 00:30"]).tz_localize("Europe/London")
    frame = pd.DataFrame({"customer_id": [7, 8], "ts": ts, "amount": [1.0, 2.0]})
    out = validate_table("transactions", frame)
    assert out["customer_id"].tolist() == ["7", "8"]
    assert out["ts"].dt.tz is None and out["ts"].dtype == "datetime64[us]"
    assert out["ts"].tolist() == [pd.Timestamp("2011-07-01 11:00"), pd.Timestamp("2011-07-01 23:30")]


def test_mixed_timestamp_formats_are_parsed():
    frame = transactions(ts=["2011-01-01 10:00:00", "2011-01-02", "2011/01/03 04:05", "2011-01-04"])
    out = validate_table("transactions", frame)
    assert out["ts"].dt.day.tolist() == [1, 2, 3, 4]


def test_valid_tables_come_back_coerced_with_a_fresh_index():
    frame = transactions().set_axis([10, 11, 12, 13])
    out = validate_tables({"transactions": frame, "customers": customers()})
    assert list(out["transactions"].index) == [0, 1, 2, 3]
    assert out["transactions"]["quantity"].dtype == "int64"
    assert out["customers"]["email_consent"].dtype == bool
    assert out["customers"]["signup_at"].dtype == "datetime64[us]"


def test_required_columns_and_tables():
    assert TABLES == ("customers", "transactions", "events", "exposures", "subscriptions")
    assert REQUIRED_COLUMNS["transactions"] == ("customer_id", "ts", "amount")
    assert REQUIRED_COLUMNS["exposures"] == ("customer_id", "campaign_id", "offer_id", "assigned_at")


# --- as-of -------------------------------------------------------------------------------------


def test_check_before_flags_rows_at_or_after_as_of():
    frames = {"transactions": transactions(), "events": events()}
    check_before(frames, datetime(2011, 2, 2))
    with pytest.raises(DataContractError) as error:
        check_before(frames, datetime(2011, 1, 5))
    (problem,) = error.value.problems
    assert (problem.table, problem.column, problem.rows) == ("transactions", "ts", 2)
    assert problem.examples[0][0] == 2  # 2011-01-05 itself is "at" the as-of time
    assert "at or after the as-of time 2011-01-05 00:00:00" in str(problem)


def test_as_of_is_checked_only_when_asked():
    frames = {"transactions": transactions()}
    assert len(validate_tables(frames)["transactions"]) == 4
    with pytest.raises(DataContractError, match="at or after the as-of time"):
        validate_tables(frames, as_of=datetime(2011, 1, 2, tzinfo=UTC))


def test_ids_given_as_objects_decimals_or_mixed():
    from decimal import Decimal

    frame = pd.DataFrame(
        {
            "customer_id": pd.Series([Decimal("12346.0"), 12347, "A-1", 12348.5], dtype=object),
            "ts": ["2011-01-01"] * 4,
            "amount": [1.0] * 4,
        }
    )
    out = validate_table("transactions", frame)
    assert out["customer_id"].tolist() == ["12346", "12347", "A-1", "12348.5"]
