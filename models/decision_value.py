"""Expected incremental profit of each (offer, channel) for each customer, term by term.

DESIGN.md "Decision":
`value = uplift_conversion x margin - send_cost - discount_cost x P(convert | offer)
         - uplift_unsubscribe x subscriber_value`.
The margin and the discount are money per converting order: the catalog's margin rate and
discount percent times the customer's expected order value (before discount), plus a fixed cost
per redemption (free shipping). The discount is paid by every converter, including those who
would have bought anyway; that is why a "sure thing" can lose money. "No message" is worth 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from features.catalog import Offer
from models.policy_config import BASELINE_CONVERT, PolicyConfig, column_for
from models.policy_options import FrameColumns, OptionGrid, float_column

logger = logging.getLogger(__name__)

__all__ = ["ValueTerms", "discount_cost_per_conversion", "option_value", "value_terms"]


def option_value(
    uplift_convert: ArrayLike,
    margin_per_conversion: ArrayLike,
    send_cost: ArrayLike,
    discount_per_conversion: ArrayLike,
    p_convert: ArrayLike,
    uplift_unsubscribe: ArrayLike,
    subscriber_value: ArrayLike,
) -> NDArray[np.float64]:
    """The decision value formula on broadcastable arrays (money per customer)."""
    return (
        np.asarray(uplift_convert, dtype=float) * np.asarray(margin_per_conversion, dtype=float)
        - np.asarray(send_cost, dtype=float)
        - np.asarray(discount_per_conversion, dtype=float) * np.asarray(p_convert, dtype=float)
        - np.asarray(uplift_unsubscribe, dtype=float) * np.asarray(subscriber_value, dtype=float)
    )


def discount_cost_per_conversion(offer: Offer, order_value: ArrayLike) -> NDArray[np.float64]:
    """What the offer gives away on one converting order: percent of the order plus a fixed cost."""
    order_value = np.asarray(order_value, dtype=float)
    cost = np.zeros_like(order_value)
    if offer.discount_pct is not None:
        cost = cost + offer.discount_pct / 100.0 * order_value
    if offer.fixed_cost is not None:
        cost = cost + offer.fixed_cost
    return cost


@dataclass(frozen=True)
class ValueTerms:
    """The value of every option (N x K) with each term kept, so a decision can be explained.

    value = incremental_margin - send_cost - discount_cost - harm, where incremental_margin =
    uplift_convert x margin per conversion, discount_cost = discount per conversion x p_convert
    and harm = uplift_unsubscribe x subscriber value.

    `has_estimate` (N x O) is False where an offer could not be priced (no uplift column or
    prior, or a missing value); those options get value NaN. `offers_without_source` (O) marks
    offers with neither a model column nor a prior.
    """

    uplift_convert: NDArray[np.float64]
    p_convert: NDArray[np.float64]
    incremental_margin: NDArray[np.float64]
    send_cost: NDArray[np.float64]
    discount_cost: NDArray[np.float64]
    harm: NDArray[np.float64]
    incremental_revenue: NDArray[np.float64]
    value: NDArray[np.float64]
    has_estimate: NDArray[np.bool_]
    offers_without_source: NDArray[np.bool_]


def _customer_amount(frame: FrameColumns, column: str, fallback: float | None, what: str) -> NDArray[np.float64]:
    values = float_column(frame, column)
    if values is None:
        if fallback is None:
            raise ValueError(f"column {column!r} ({what}) is missing; add it or set the policy's fallback for it")
        return np.full(len(frame), fallback)
    missing = np.isnan(values)
    if missing.any():
        if fallback is None:
            raise ValueError(
                f"column {column!r} ({what}) is missing for {int(missing.sum())} of {len(values)} customers "
                f"(e.g. rows {np.flatnonzero(missing)[:3].tolist()}); set the policy's fallback value for it"
            )
        values = np.where(missing, fallback, values)
    if (values < 0).any():
        raise ValueError(f"column {column!r} ({what}) has {int((values < 0).sum())} negative values")
    return values


@cache
def _column_names(quantity: str, offer_id: str, channel: str) -> tuple[str, str]:
    """The per-offer and the per-(offer, channel) column of a quantity, formatted once per process."""
    return column_for(quantity, offer_id), column_for(quantity, offer_id, channel)


def _offer_column(
    frame: FrameColumns, quantity: str, offer: Offer, channel: str
) -> tuple[NDArray[np.float64] | None, bool]:
    """The per-(offer, channel) column where present and not missing, else the per-offer column.

    Returns (values or None, whether any column exists).
    """
    offer_name, channel_name = _column_names(quantity, offer.offer_id, channel)
    offer_values, channel_values = frame.floats(offer_name), frame.floats(channel_name)
    if channel_values is None:
        return offer_values, offer_values is not None
    if offer_values is None:
        return channel_values, True
    return np.where(np.isnan(channel_values), offer_values, channel_values), True


def _stack(columns: list[NDArray[np.float64]], n_rows: int) -> NDArray[np.float64]:
    """Per-option columns side by side (n_rows x len(columns)), also for zero rows."""
    return np.column_stack(columns).reshape(n_rows, len(columns))


def value_terms(frame: pd.DataFrame | FrameColumns, grid: OptionGrid, config: PolicyConfig) -> ValueTerms:
    """Every term of the value formula for every customer and option, from the input columns.

    Reads `uplift_convert__<offer>[__<channel>]`, `uplift_unsubscribe__…`, `uplift_revenue__…`,
    `p_convert__<offer>` (else `p_convert__control` + uplift), the order value and the
    subscriber value. Offers without model columns use `config.uplift_priors`, else stay unpriced.
    """
    frame = FrameColumns.of(frame)
    n_rows, n_options = len(frame), grid.size
    shape = (n_rows, n_options)
    order_value = _customer_amount(frame, config.order_value_column, config.fallback_order_value, "order value")
    subscriber_value = _customer_amount(
        frame, config.subscriber_value_column, config.fallback_subscriber_value, "subscriber value"
    )
    baseline = float_column(frame, BASELINE_CONVERT)
    uplift_convert, p_convert = np.full(shape, np.nan), np.full(shape, np.nan)
    uplift_unsubscribe, revenue = np.zeros(shape), np.full(shape, np.nan)
    margin, discount = np.zeros(shape), np.zeros(shape)
    has_estimate = np.ones((n_rows, len(grid.offers)), dtype=bool)
    without_source = np.zeros(len(grid.offers), dtype=bool)
    # Gather each option's inputs, then compute every term on whole matrices: the same element-wise
    # arithmetic as option by option, without a dozen numpy calls per option.
    priced, positions, converts, unsubscribes, conversions, discounts = [], [], [], [], [], []
    revenues, revenue_given = [], []
    per_offer_discount: dict[int, NDArray[np.float64]] = {}
    for option in range(n_options):
        position = int(grid.offer_index[option])
        offer, channel = grid.offers[position], grid.channels[grid.channel_index[option]]
        prior = config.uplift_priors.get(offer.offer_id)
        convert, has_column = _offer_column(frame, "uplift_convert", offer, channel)
        if not has_column and prior is None:
            without_source[position] = True
            has_estimate[:, position] = False
            continue
        if convert is None:
            convert = np.full(n_rows, prior.convert)
            unsubscribe = np.full(n_rows, prior.unsubscribe)
            option_revenue = None if prior.revenue is None else np.full(n_rows, prior.revenue)
        else:
            unsubscribe, _ = _offer_column(frame, "uplift_unsubscribe", offer, channel)
            unsubscribe = np.zeros(n_rows) if unsubscribe is None else unsubscribe
            option_revenue, _ = _offer_column(frame, "uplift_revenue", offer, channel)
        converted, _ = _offer_column(frame, "p_convert", offer, channel)
        if position not in per_offer_discount:
            per_offer_discount[position] = discount_cost_per_conversion(offer, order_value)
        per_conversion = per_offer_discount[position]
        if converted is None and baseline is None:
            if np.any(per_conversion > 0):
                raise ValueError(
                    f"offer {offer.offer_id!r} gives a discount, so its cost needs P(convert | offer): add "
                    f"column {column_for('p_convert', offer.offer_id)!r} or the baseline {BASELINE_CONVERT!r}"
                )
            converted = np.zeros(n_rows)
        priced.append(option)
        positions.append(position)
        converts.append(convert)
        unsubscribes.append(unsubscribe)
        revenue_given.append(option_revenue is not None)
        revenues.append(np.zeros(n_rows) if option_revenue is None else option_revenue)
        # No P(convert) column: the baseline + uplift, filled in below (NaN marks it, like a missing value).
        conversions.append(np.full(n_rows, np.nan) if converted is None else converted)
        discounts.append(per_conversion)
    if priced:
        columns = np.asarray(priced)
        convert = _stack(converts, n_rows)
        unsubscribe = _stack(unsubscribes, n_rows)
        converted = _stack(conversions, n_rows)
        if baseline is not None:
            from_baseline = np.clip(baseline[:, None] + convert, 0.0, 1.0)
            converted = np.where(np.isnan(converted), from_baseline, converted)
        missing = np.isnan(convert) | np.isnan(unsubscribe) | np.isnan(converted)
        for column, position in enumerate(positions):
            has_estimate[missing[:, column], position] = False
        margins = np.array([grid.offers[position].margin for position in positions])
        uplift_convert[:, columns], p_convert[:, columns] = convert, converted
        uplift_unsubscribe[:, columns] = unsubscribe
        margin[:, columns] = margins[None, :] * order_value[:, None]
        discount[:, columns] = _stack(discounts, n_rows)
        # Without a revenue column: convert x order value.
        given = np.array(revenue_given)[None, :]
        revenue[:, columns] = np.where(given, _stack(revenues, n_rows), convert * order_value[:, None])
    send_cost = np.broadcast_to(grid.send_costs(), shape)
    value = option_value(
        uplift_convert, margin, send_cost, discount, p_convert, uplift_unsubscribe, subscriber_value[:, None]
    )
    priced = has_estimate[:, grid.offer_index]
    value = np.where(priced, value, np.nan)
    if without_source.any():
        logger.debug(
            "offers without uplift columns or priors (never sent): %s",
            [offer.offer_id for offer, flag in zip(grid.offers, without_source, strict=True) if flag],
        )
    return ValueTerms(
        uplift_convert=uplift_convert,
        p_convert=p_convert,
        incremental_margin=uplift_convert * margin,
        send_cost=send_cost,
        discount_cost=discount * p_convert,
        harm=uplift_unsubscribe * subscriber_value[:, None],
        incremental_revenue=revenue,
        value=value,
        has_estimate=has_estimate,
        offers_without_source=without_source,
    )
