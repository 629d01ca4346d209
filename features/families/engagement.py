"""Engagement per channel: messages sent, opened and clicked; visits; opt-outs; responsiveness;
failed payments. All of it comes from one grouped scan of the events.

Smoothed rates shrink each customer's rate towards the population's pooled rate with a Beta
prior worth `PRIOR_SENDS` sends: rate = (hits + PRIOR_SENDS * pooled) / (sends + PRIOR_SENDS),
where pooled = all customers' hits / all customers' sends in the same channel and window.
A customer with no sends gets the pooled rate; with many sends, their own.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.families.common import (
    WINDOWS,
    Family,
    FeatureDef,
    SnapshotContext,
    count_feature,
    count_where,
    join_on_customer,
    keep_declared,
    real,
    trend,
)

NAME = "engagement"
SOURCE = "events"
CHANNELS = ("email", "sms", "push")
MESSAGE_EVENTS = (("sends", "send"), ("opens", "open"), ("clicks", "click"))
OPT_OUT_EVENTS = (("unsubscribed", "unsubscribe"), ("bounced", "bounce"), ("complained", "complaint"))
LAST_SEEN_EVENTS = (("send", "send"), ("open", "open"), ("click", "click"), ("visit", "visit"), ("login", "login"))
ACTIVITY_EVENTS = (("visits", "visit"), ("logins", "login"))
ACTIVITY_WINDOWS = (30, 90)
RATE_DAYS = 365
TREND_DAYS = 30
PRIOR_SENDS = 10.0
FAILED_PAYMENT_DAYS = 30
EVENT_CHANNELS = ("email", "sms", "push", "web", "app")
EVENT_TYPES = (
    "send", "open", "click", "unsubscribe", "bounce", "complaint", "visit", "login",
    "feature_use", "support_ticket", "payment_failed",
)  # fmt: skip
#: Window edges in days; an event's bucket is the index of the first edge it is within.
EDGES = tuple(sorted({*WINDOWS, *ACTIVITY_WINDOWS, 2 * TREND_DAYS}))


def _definitions() -> tuple[FeatureDef, ...]:
    definitions: list[FeatureDef] = []
    for channel in CHANNELS:
        for plural, event_type in MESSAGE_EVENTS:
            definitions.extend(
                count_feature(
                    f"{channel}_{plural}_{days}d",
                    f"{channel} {event_type} events in the last {days} days",
                    days,
                    SOURCE,
                    NAME,
                )
                for days in WINDOWS
            )
        for kind, event_type in (("open", "opens"), ("click", "clicks")):
            definitions.append(
                FeatureDef(
                    f"{channel}_{kind}_rate_{RATE_DAYS}d",
                    f"{channel} {event_type} per send over {RATE_DAYS} days, Beta-smoothed "
                    f"towards the population rate ({PRIOR_SENDS:g} pseudo-sends)",
                    RATE_DAYS,
                    "rate",
                    SOURCE,
                    NAME,
                )
            )
        definitions.append(
            FeatureDef(
                f"{channel}_engagement_trend_{TREND_DAYS}d",
                f"{channel} opens+clicks, last {TREND_DAYS}d vs the {TREND_DAYS}d before: "
                "(recent - prior) / (recent + prior); null when both are 0",
                TREND_DAYS,
                "ratio",
                SOURCE,
                NAME,
            )
        )
        for flag, event_type in OPT_OUT_EVENTS:
            note = " or customers.unsubscribed_at" if (channel, flag) == ("email", "unsubscribed") else ""
            definitions.append(
                FeatureDef(
                    f"{channel}_{flag}",
                    f"1 if any {channel} {event_type} event before the as-of time{note}",
                    None,
                    "flag",
                    SOURCE,
                    NAME,
                    dtype="int64",
                    fill_value=0,
                )
            )
    for label, event_type in LAST_SEEN_EVENTS:
        definitions.append(
            FeatureDef(
                f"days_since_last_{label}",
                f"Days since the last {event_type} event on any channel (null if none)",
                None,
                "days",
                SOURCE,
                NAME,
            )
        )
    for plural, event_type in ACTIVITY_EVENTS:
        definitions.extend(
            count_feature(
                f"{plural}_{days}d",
                f"web/app {event_type} events in the last {days} days",
                days,
                SOURCE,
                NAME,
            )
            for days in ACTIVITY_WINDOWS
        )
    definitions.append(
        count_feature("support_tickets_90d", "support_ticket events in the last 90 days", 90, SOURCE, NAME)
    )
    definitions.append(
        count_feature(
            f"failed_payments_{FAILED_PAYMENT_DAYS}d",
            f"payment_failed events in the last {FAILED_PAYMENT_DAYS} days (the billing_issue stage reads it)",
            FAILED_PAYMENT_DAYS,
            SOURCE,
            NAME,
        )
    )
    definitions.append(
        FeatureDef(
            "best_channel",
            f"Channel with the highest smoothed click rate ({RATE_DAYS}d) among those with a "
            "send in that window; ties go to email, then sms, then push; null if none",
            RATE_DAYS,
            "category",
            SOURCE,
            NAME,
            dtype="str",
        )
    )
    return tuple(definitions)


FEATURES = _definitions()


def _coded(events: ir.Table, context: SnapshotContext) -> ir.Table:
    """Events with small integer codes, so the many conditional counts compare integers.

    `_type` indexes EVENT_TYPES, `_kind` = 16 * channel index + `_type`, and `_bucket` is the
    index in EDGES of the shortest window holding the event (len(EDGES) when older).
    """
    type_code = ibis.cases(
        *((events.event_type == name, index) for index, name in enumerate(EVENT_TYPES)),
        else_=-1,
    )
    channel_code = ibis.cases(
        *((events.channel == name, index) for index, name in enumerate(EVENT_CHANNELS)),
        else_=-1,
    )
    bucket = ibis.cases(
        *((events.ts >= context.since(days), index) for index, days in enumerate(EDGES)),
        else_=len(EDGES),
    )
    coded = events.select("customer_id", "ts", _type=type_code, _channel=channel_code, _bucket=bucket)
    return coded.mutate(_kind=coded._channel * 16 + coded._type)


def _kind(channel: str, event_type: str) -> int:
    return 16 * EVENT_CHANNELS.index(channel) + EVENT_TYPES.index(event_type)


def _aggregate(context: SnapshotContext) -> ir.Table:
    """Every per-channel, per-type, per-window count in one grouped scan of the events."""
    events = _coded(context.events, context)
    within = {days: events._bucket <= EDGES.index(days) for days in EDGES}
    reductions: dict[str, ir.Value] = {}
    for channel in CHANNELS:
        for plural, event_type in MESSAGE_EVENTS:
            is_kind = events._kind == _kind(channel, event_type)
            for days in WINDOWS:
                reductions[f"{channel}_{plural}_{days}d"] = count_where(is_kind & within[days])
        responded = events._kind.isin([_kind(channel, "open"), _kind(channel, "click")])
        prior = events._bucket == EDGES.index(2 * TREND_DAYS)
        reductions[f"{channel}_prior_responses"] = count_where(responded & prior)
        for flag, event_type in OPT_OUT_EVENTS:
            ever = count_where(events._kind == _kind(channel, event_type)) > 0
            reductions[f"{channel}_{flag}"] = ever.cast("int64")
    for label, event_type in LAST_SEEN_EVENTS:
        is_type = events._type == EVENT_TYPES.index(event_type)
        reductions[f"last_{label}_at"] = ibis.ifelse(is_type, events.ts, ibis.null()).max()
    for plural, event_type in ACTIVITY_EVENTS:
        for days in ACTIVITY_WINDOWS:
            is_type = events._type == EVENT_TYPES.index(event_type)
            reductions[f"{plural}_{days}d"] = count_where(is_type & within[days])
    is_ticket = events._type == EVENT_TYPES.index("support_ticket")
    reductions["support_tickets_90d"] = count_where(is_ticket & within[90])
    is_failed_payment = events._type == EVENT_TYPES.index("payment_failed")
    reductions[f"failed_payments_{FAILED_PAYMENT_DAYS}d"] = count_where(is_failed_payment & within[FAILED_PAYMENT_DAYS])
    return events.group_by("customer_id").aggregate(**reductions)


def smoothed_rate(hits: ir.IntegerColumn, sends: ir.IntegerColumn, pooled: ir.FloatingValue) -> ir.FloatingValue:
    """(hits + PRIOR_SENDS * pooled) / (sends + PRIOR_SENDS)."""
    prior = real(PRIOR_SENDS)
    return (hits.cast("float64") + prior * pooled) / (sends.cast("float64") + prior)


def build(context: SnapshotContext) -> list[ir.Table]:
    """Counts for every known customer, then pooled-prior rates, trends and best channel."""
    if context.events is None:
        return []
    counts = _aggregate(context)
    table = join_on_customer(context.base, counts)
    count_columns = [name for name, dtype in counts.schema().items() if dtype.is_integer() and name != "customer_id"]
    table = table.mutate(**{name: table[name].fill_null(0) for name in count_columns})
    if context.has_column("customers", "unsubscribed_at"):
        customers = context.customers
        unsubscribed = customers.select("customer_id", unsubscribed_at=customers.unsubscribed_at)
        table = join_on_customer(table, unsubscribed)
        at = table.unsubscribed_at
        table = table.mutate(
            email_unsubscribed=ibis.ifelse(
                at.notnull() & (at < context.as_of_literal), 1, table.email_unsubscribed
            ).cast("int64")
        )
    pooled = _pooled_rates(table)
    table = table.cross_join(pooled)
    columns: dict[str, ir.Value] = {}
    for channel in CHANNELS:
        sends = table[f"{channel}_sends_{RATE_DAYS}d"]
        for kind, plural in (("open", "opens"), ("click", "clicks")):
            columns[f"{channel}_{kind}_rate_{RATE_DAYS}d"] = smoothed_rate(
                table[f"{channel}_{plural}_{RATE_DAYS}d"],
                sends,
                table[f"pooled_{channel}_{kind}"],
            )
        recent = table[f"{channel}_opens_{TREND_DAYS}d"] + table[f"{channel}_clicks_{TREND_DAYS}d"]
        columns[f"{channel}_engagement_trend_{TREND_DAYS}d"] = trend(recent, table[f"{channel}_prior_responses"])
    for label, _ in LAST_SEEN_EVENTS:
        columns[f"days_since_last_{label}"] = context.days_ago(table[f"last_{label}_at"])
    table = table.mutate(**columns)
    table = table.mutate(best_channel=_best_channel(table))
    return [keep_declared(table, FEATURES)]


def _pooled_rates(table: ir.Table) -> ir.Table:
    """One row: every channel's pooled open and click rate over all known customers."""
    sums = {}
    for channel in CHANNELS:
        for plural in ("sends", "opens", "clicks"):
            column = f"{channel}_{plural}_{RATE_DAYS}d"
            sums[f"total_{column}"] = table[column].sum()
    totals = table.aggregate(**sums)
    rates = {}
    for channel in CHANNELS:
        sends = totals[f"total_{channel}_sends_{RATE_DAYS}d"]
        for kind, plural in (("open", "opens"), ("click", "clicks")):
            hits = totals[f"total_{channel}_{plural}_{RATE_DAYS}d"]
            rates[f"pooled_{channel}_{kind}"] = ibis.ifelse(sends > 0, hits / sends, ibis.null("float64"))
    return totals.select(**rates)


def _best_channel(table: ir.Table) -> ir.StringValue:
    rates = {
        channel: ibis.ifelse(
            table[f"{channel}_sends_{RATE_DAYS}d"] > 0,
            table[f"{channel}_click_rate_{RATE_DAYS}d"],
            ibis.null("float64"),
        )
        for channel in CHANNELS
    }
    best = ibis.greatest(*(rate.fill_null(-1.0) for rate in rates.values()))
    branches = [(rate.notnull() & (rate >= best), channel) for channel, rate in rates.items()]
    return ibis.cases(*branches, else_=ibis.null("str"))


FAMILY = Family(NAME, FEATURES, build=build)
