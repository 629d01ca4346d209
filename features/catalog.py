"""The offers catalog: which messages exist, where they may go, what they cost and earn.

Read from YAML into pydantic models; a bad catalog raises a DataContractError whose lines name
the offer and the field (`catalog.offers[summer10].cost_per_send: ...`), not pydantic's dump.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.contract import CONTROL_OFFER_ID, DataContractError, Problem

OfferKind = Literal[
    "discount",
    "free_shipping",
    "content",
    "reminder",
    "win_back",
    "onboarding",
    "loyalty",
    "renewal",
    "billing_alert",
    "upsell",
    "new_product",
]
Channel = Literal["email", "sms", "push"]
LifecycleStage = Literal[
    "onboarding",
    "active",
    "at_risk",
    "lapsed",
    "win_back",
    "renewal_due",
    "billing_issue",
    "upsell_ready",
]
LIFECYCLE_STAGES: tuple[str, ...] = LifecycleStage.__args__
# The built-in catalog: the lifecycle sequences a retention team runs plus the simulator's offers.
DEFAULT_CATALOG_PATH = Path(__file__).resolve().with_name("default_catalog.yaml")

OFFER_KINDS: tuple[str, ...] = OfferKind.__args__
MESSAGE_CHANNELS: tuple[str, ...] = Channel.__args__


class Offer(BaseModel):
    """One message that can be sent: its kind, channels, costs, value and eligibility."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offer_id: str = Field(min_length=1, description="unique id; `control` is reserved")
    kind: OfferKind
    channels: tuple[Channel, ...] = Field(min_length=1, description="where it may be sent")
    cost_per_send: dict[Channel, float] = Field(description="cost of one send, per channel")
    discount_pct: float | None = Field(
        default=None, gt=0, le=100, description="percent off the order, for discounts"
    )
    fixed_cost: float | None = Field(
        default=None, ge=0, description="cost per redemption (e.g. free shipping)"
    )
    margin: float = Field(ge=0, le=1, description="gross margin on an order this offer drives")
    eligible_stages: tuple[LifecycleStage, ...] = Field(
        min_length=1, description="lifecycle stages in which it may be sent"
    )
    product_id: str | None = None
    category: str | None = None
    cooldown_days: int = Field(default=0, ge=0, description="days before it may be sent again")
    description: str = ""

    @model_validator(mode="after")
    def _check_consistency(self) -> Offer:
        if self.offer_id == CONTROL_OFFER_ID:
            raise ValueError(f"offer_id {CONTROL_OFFER_ID!r} is reserved for the control arm")
        missing = [channel for channel in self.channels if channel not in self.cost_per_send]
        if missing:
            raise ValueError(
                f"cost_per_send has no cost for channel(s) {', '.join(missing)} "
                f"(costs given: {', '.join(self.cost_per_send) or 'none'})"
            )
        negative = {c: cost for c, cost in self.cost_per_send.items() if cost < 0}
        if negative:
            raise ValueError(f"cost_per_send must be >= 0, got {negative}")
        if self.discount_pct is not None and self.fixed_cost is not None:
            raise ValueError("give discount_pct or fixed_cost, not both")
        if self.kind == "discount" and self.discount_pct is None:
            raise ValueError("a discount offer needs discount_pct")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels are repeated: {list(self.channels)}")
        return self


class Catalog(BaseModel):
    """A versioned set of offers with unique ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    offers: tuple[Offer, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_unique_ids(self) -> Catalog:
        repeated = [name for name, count in Counter(o.offer_id for o in self.offers).items() if count > 1]
        if repeated:
            raise ValueError(f"offer_id must be unique; repeated: {', '.join(repeated)}")
        return self

    def offer(self, offer_id: str) -> Offer:
        """The offer with this id (KeyError naming the known ids otherwise)."""
        for offer in self.offers:
            if offer.offer_id == offer_id:
                return offer
        raise KeyError(f"no offer {offer_id!r} in catalog {self.version}; known: {self.offer_ids}")

    @property
    def offer_ids(self) -> tuple[str, ...]:
        return tuple(offer.offer_id for offer in self.offers)


def _where(location: tuple[int | str, ...], raw: object) -> tuple[str, str | None]:
    """('catalog.offers[<offer_id>]', 'field.path') for a pydantic error location."""
    if len(location) >= 2 and location[0] == "offers" and isinstance(location[1], int):
        index = location[1]
        offers = raw.get("offers") if isinstance(raw, dict) else None
        label = str(index)
        if isinstance(offers, list) and index < len(offers) and isinstance(offers[index], dict):
            label = str(offers[index].get("offer_id", index))
        field = ".".join(str(part) for part in location[2:]) or None
        return f"catalog.offers[{label}]", field
    return "catalog", ".".join(str(part) for part in location) or None


FIELD_HINTS = {
    "cost_per_send": "give a cost for every listed channel, e.g. cost_per_send: {email: 0.002}",
    "channels": f"list channels from {', '.join(MESSAGE_CHANNELS)}",
    "eligible_stages": f"list stages from {', '.join(LIFECYCLE_STAGES)}",
    "kind": f"use one of {', '.join(OFFER_KINDS)}",
    "offer_id": "give every offer a unique id other than 'control'",
    "margin": "margin is a fraction of order value in [0, 1], e.g. 0.35",
    "discount_pct": "discount_pct is percent off in (0, 100], e.g. 10",
}


def _hint(item: dict, column: str | None) -> str:
    if item["type"] == "extra_forbidden":
        return f"remove it or check its spelling; offer fields are {', '.join(Offer.model_fields)}"
    if item["type"] == "missing":
        return "add the field"
    field = (column or "").split(".")[0]
    message = item["msg"]
    for name, hint in FIELD_HINTS.items():
        if name == field or (not field and name in message):
            return hint
    return "fix the value in the catalog YAML"


def _has_item_errors(location: tuple, items: list) -> bool:
    depth = len(location)
    return any(
        len(other["loc"]) > depth
        and tuple(other["loc"][:depth]) == location
        and isinstance(other["loc"][depth], int)
        for other in items
    )


def catalog_problems(error: ValidationError, raw: object) -> list[Problem]:
    """Turn pydantic's errors into Problems that name the offer and the field."""
    problems = []
    items = error.errors()
    for item in items:
        if item["type"] == "too_short" and _has_item_errors(tuple(item["loc"]), items):
            continue  # pydantic also calls a tuple with a bad item "too short"; the item says why
        table, column = _where(tuple(item["loc"]), raw)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] not in ("missing", "extra_forbidden") and "input" in item:
            value = item["input"]
            if not isinstance(value, dict | list):
                message += f" (got {value!r})"
        problems.append(Problem(table, column, message, hint=_hint(item, column)))
    return problems


def parse_catalog(raw: object, source: str = "catalog") -> Catalog:
    """Validate an already-parsed YAML/JSON structure as a Catalog."""
    if not isinstance(raw, dict):
        raise DataContractError(
            [
                Problem(
                    "catalog",
                    None,
                    f"{source} must be a mapping with version and offers, got {type(raw).__name__}",
                    hint="start the file with `version: ...` and `offers:`",
                )
            ]
        )
    try:
        return Catalog.model_validate(raw)
    except ValidationError as error:
        raise DataContractError(catalog_problems(error, raw)) from None


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate the offers catalog YAML at `path`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"offers catalog {path} does not exist") from None
    except yaml.YAMLError as error:
        raise ValueError(f"offers catalog {path} is not valid YAML: {error}") from error
    return parse_catalog(raw, source=str(path))
