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


def _option_values(
    frame: FrameColumns, grid: OptionGrid, quantity: str
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per option, the per-(offer, channel) column where present and not missing, else the per-offer column.

    Returns (N x K values, NaN where neither column has one; K flags, whether either column exists).
    """
    names, size = grid.option_columns(quantity), grid.size  # per (offer, channel), then per offer
    values, exists = frame.float_matrix(names), frame.contain(names)
    by_channel = values[:, :size]
    return np.where(np.isnan(by_channel), values[:, size:], by_channel), exists[:size] | exists[size:]


def _prior_terms(grid: OptionGrid, config: PolicyConfig) -> tuple[NDArray, ...]:
    """Per option, from its offer's prior: whether there is one, the convert, unsubscribe and revenue
    uplift (NaN without) and whether it gives a revenue."""
    n_offers = len(grid.offers)
    has_prior, has_revenue = np.zeros(n_offers, dtype=bool), np.zeros(n_offers, dtype=bool)
    effects = np.full((n_offers, 3), np.nan)
    for position, offer_id in enumerate(grid.offer_names) if config.uplift_priors else ():
        prior = config.uplift_priors.get(offer_id)
        if prior is not None:
            has_prior[position], has_revenue[position] = True, prior.revenue is not None
            effects[position] = (prior.convert, prior.unsubscribe, np.nan if prior.revenue is None else prior.revenue)
    effects = effects[grid.offer_index]
    return has_prior[grid.offer_index], effects[:, 0], effects[:, 1], effects[:, 2], has_revenue[grid.offer_index]


def _check_conversion_source(
    grid: OptionGrid, options: NDArray[np.intp], discounts: dict[int, NDArray[np.float64]]
) -> None:
    """Without P(convert) a discounting offer cannot be costed: name the first such offer."""
    for position in grid.offer_index[options].tolist():
        offer = grid.offers[position]
        if np.any(discounts[position] > 0):
            raise ValueError(
                f"offer {offer.offer_id!r} gives a discount, so its cost needs P(convert | offer): add "
                f"column {column_for('p_convert', offer.offer_id)!r} or the baseline {BASELINE_CONVERT!r}"
            )


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
    # Every option's inputs as whole matrices: an option is priced from its model columns, else from
    # its offer's prior; an offer with any option that has neither is never priced.
    convert, has_column = _option_values(frame, grid, "uplift_convert")
    has_prior, prior_convert, prior_unsubscribe, prior_revenue, prior_has_revenue = _prior_terms(grid, config)
    priced = has_column | has_prior
    without_source = ~priced @ grid.offer_membership
    has_estimate = np.ones((n_rows, len(grid.offers)), dtype=bool)
    has_estimate[:, without_source] = False
    columns = np.flatnonzero(priced)
    if len(columns):
        from_prior = ~has_column[columns]
        positions = grid.offer_index[columns]
        unsubscribe, has_unsubscribe = _option_values(frame, grid, "uplift_unsubscribe")
        revenues, has_revenue = _option_values(frame, grid, "uplift_revenue")
        converted, has_converted = _option_values(frame, grid, "p_convert")
        convert = np.where(from_prior, prior_convert[columns], convert[:, columns])
        unsubscribe = np.where(
            from_prior, prior_unsubscribe[columns], np.where(has_unsubscribe[columns], unsubscribe[:, columns], 0.0)
        )
        revenues = np.where(from_prior, prior_revenue[columns], revenues[:, columns])
        revenue_given = np.where(from_prior, prior_has_revenue[columns], has_revenue[columns])
        converted = converted[:, columns]
        discounts = {
            position: discount_cost_per_conversion(grid.offers[position], order_value)
            for position in set(positions.tolist())
        }
        if baseline is None:
            _check_conversion_source(grid, columns[~has_converted[columns]], discounts)
            converted = np.where(has_converted[columns], converted, 0.0)
        else:
            # No P(convert) column (or a missing value): the baseline + uplift.
            from_baseline = np.clip(baseline[:, None] + convert, 0.0, 1.0)
            converted = np.where(np.isnan(converted), from_baseline, converted)
        missing = np.isnan(convert) | np.isnan(unsubscribe) | np.isnan(converted)
        has_estimate &= ~(missing @ grid.offer_membership[columns])
        margins = np.array([grid.offers[position].margin for position in positions])
        uplift_convert[:, columns], p_convert[:, columns] = convert, converted
        uplift_unsubscribe[:, columns] = unsubscribe
        margin[:, columns] = margins[None, :] * order_value[:, None]
        discount[:, columns] = np.column_stack([discounts[position] for position in positions.tolist()]).reshape(
            n_rows, len(columns)
        )
        # Without a revenue column: convert x order value.
        revenue[:, columns] = np.where(revenue_given, revenues, convert * order_value[:, None])
    send_cost = np.broadcast_to(grid.send_costs(), shape)
    value = option_value(
        uplift_convert, margin, send_cost, discount, p_convert, uplift_unsubscribe, subscriber_value[:, None]
    )
    value = np.where(has_estimate[:, grid.offer_index], value, np.nan)
    if logger.isEnabledFor(logging.DEBUG) and without_source.any():
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
