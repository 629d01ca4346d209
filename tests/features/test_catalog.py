"""The offers catalog: YAML into pydantic models, and errors that name the offer and field."""

from __future__ import annotations

import textwrap

import pytest

from features.catalog import Catalog, Offer, load_catalog, parse_catalog
from features.contract import DataContractError

CATALOG_YAML = textwrap.dedent(
    """
    version: "2024-05"
    offers:
      - offer_id: ten_off
        kind: discount
        channels: [email, sms]
        cost_per_send: {email: 0.002, sms: 0.04}
        discount_pct: 10
        margin: 0.35
        eligible_stages: [at_risk, lapsed]
        category: kitchen
        cooldown_days: 14
        description: Ten percent off the next order.
      - offer_id: billing_reminder
        kind: billing_alert
        channels: [sms]
        cost_per_send: {sms: 0.04}
        margin: 0.0
        eligible_stages: [billing_issue]
    """
)


def offer(**overrides) -> dict:
    base = {
        "offer_id": "ten_off",
        "kind": "discount",
        "channels": ["email"],
        "cost_per_send": {"email": 0.002},
        "discount_pct": 10,
        "margin": 0.35,
        "eligible_stages": ["active"],
    }
    return base | overrides


def error_text(raw: dict) -> str:
    with pytest.raises(DataContractError) as error:
        parse_catalog(raw)
    assert isinstance(error.value, ValueError)
    return str(error.value)


def test_load_catalog(tmp_path):
    path = tmp_path / "offers.yaml"
    path.write_text(CATALOG_YAML)
    catalog = load_catalog(path)
    assert isinstance(catalog, Catalog)
    assert catalog.version == "2024-05"
    assert catalog.offer_ids == ("ten_off", "billing_reminder")
    ten_off = catalog.offer("ten_off")
    assert isinstance(ten_off, Offer)
    assert ten_off.channels == ("email", "sms") and ten_off.cost_per_send["sms"] == 0.04
    assert ten_off.eligible_stages == ("at_risk", "lapsed")
    assert ten_off.cooldown_days == 14 and ten_off.category == "kitchen"
    assert catalog.offer("billing_reminder").cooldown_days == 0
    with pytest.raises(KeyError, match="known: \\('ten_off', 'billing_reminder'\\)"):
        catalog.offer("nope")


def test_cost_per_send_must_cover_every_channel():
    text = error_text({"version": "1", "offers": [offer(channels=["email", "sms", "push"])]})
    assert text.startswith("catalog.offers[ten_off]: cost_per_send has no cost for channel(s) sms, push")
    assert "Hint: give a cost for every listed channel" in text


def test_errors_name_the_offer_and_field():
    raw = {
        "version": "1",
        "offers": [
            offer(),
            offer(offer_id="bad_one", kind="bribe", cooldown_days=-3, margin=1.5, colour="red"),
        ],
    }
    text = error_text(raw)
    assert "catalog.offers[bad_one].kind: Input should be 'discount'" in text
    assert "(got 'bribe')" in text
    assert "catalog.offers[bad_one].cooldown_days: Input should be greater than or equal to 0" in text
    assert "catalog.offers[bad_one].margin:" in text
    assert "catalog.offers[bad_one].colour: Extra inputs are not permitted" in text
    assert "ten_off" not in text  # the good offer is not blamed


def test_channels_and_stages_are_checked():
    text = error_text(
        {"version": "1", "offers": [offer(channels=["fax"], eligible_stages=["happy"])]}
    )
    assert "catalog.offers[ten_off].channels.0: Input should be 'email', 'sms' or 'push'" in text
    assert "catalog.offers[ten_off].eligible_stages.0:" in text and "(got 'happy')" in text
    assert "too short" not in text and "at least 1 item" not in text
    text = error_text({"version": "1", "offers": [offer(channels=[])]})
    assert "catalog.offers[ten_off].channels: Tuple should have at least 1 item" in text


def test_offer_ids_are_unique_and_control_is_reserved():
    text = error_text({"version": "1", "offers": [offer(), offer()]})
    assert "offer_id must be unique; repeated: ten_off" in text
    text = error_text({"version": "1", "offers": [offer(offer_id="control")]})
    assert "catalog.offers[control]: offer_id 'control' is reserved" in text


def test_discount_needs_a_discount_and_missing_fields_are_named():
    text = error_text({"version": "1", "offers": [offer(discount_pct=None)]})
    assert "a discount offer needs discount_pct" in text
    raw_offer = offer()
    del raw_offer["margin"]
    text = error_text({"version": "1", "offers": [raw_offer]})
    assert "catalog.offers[ten_off].margin: Field required" in text


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_catalog(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [1\noffers: {")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_catalog(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(DataContractError, match="must be a mapping with version and offers"):
        load_catalog(listed)
