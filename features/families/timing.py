"""Timing: when a customer responds (opens, clicks, orders) by hour of day and day of week.

Responses in the last 365 days are counted per local hour (the customer's `timezone` where the
customers table has one, UTC otherwise; the UTC offset is looked up per day, so daylight saving
time is followed) and per weekday (Monday = 0). Profiles are smoothed so that sparse histories
still give a usable distribution:

- hour: s_h = 0.25 c_{h-1} + 0.5 c_h + 0.25 c_{h+1} (circular), p_h = (s_h + 1/24) / (n + 1)
- weekday: p_d = (c_d + 1/7) / (n + 1)

with c the counts and n their total, i.e. a Dirichlet prior worth one response spread evenly.
A customer with no responses gets the uniform profile and a null preferred hour/weekday.
The full 24 + 7 profile is for the send-time model; the day-part and weekend shares and the
preferred hour are the coarse version for the churn and response models.
"""

from __future__ import annotations

import logging
import zoneinfo

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from features.families.common import (
    Family,
    FeatureDef,
    SnapshotContext,
    count_feature,
    count_where,
    keep_declared,
    real,
)

logger = logging.getLogger(__name__)

NAME = "timing"
SOURCE = "transactions"
PROFILE_DAYS = 365
PRIOR_RESPONSES = 1.0
HOURS = tuple(range(24))
WEEKDAYS = tuple(range(7))
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAYPARTS = (("night", 0, 6), ("morning", 6, 12), ("afternoon", 12, 18), ("evening", 18, 24))
RESPONSES = "opens, clicks (when events exist) and orders"


def _definitions() -> tuple[FeatureDef, ...]:
    window = PROFILE_DAYS
    definitions = [
        count_feature(
            "responses_365d",
            f"Responses ({RESPONSES}) in the last {window} days",
            window,
            SOURCE,
            NAME,
        )
    ]
    definitions.extend(
        FeatureDef(
            f"hour_profile_{hour:02d}",
            f"Smoothed share of responses in local hour {hour:02d}:00-{hour:02d}:59",
            window,
            "share",
            SOURCE,
            NAME,
            fill_value=1 / 24,
        )
        for hour in HOURS
    )
    definitions.extend(
        FeatureDef(
            f"weekday_profile_{day}",
            f"Smoothed share of responses on {WEEKDAY_NAMES[day]} (local time)",
            window,
            "share",
            SOURCE,
            NAME,
            fill_value=1 / 7,
        )
        for day in WEEKDAYS
    )
    definitions.extend(
        FeatureDef(
            f"daypart_share_{part}",
            f"Smoothed share of responses in local hours {start:02d}-{end - 1:02d}",
            window,
            "share",
            SOURCE,
            NAME,
            fill_value=(end - start) / 24,
        )
        for part, start, end in DAYPARTS
    )
    definitions.append(
        FeatureDef(
            "weekend_share",
            "Smoothed share of responses on Saturday and Sunday",
            window,
            "share",
            SOURCE,
            NAME,
            fill_value=2 / 7,
        )
    )
    definitions.append(
        FeatureDef(
            "preferred_hour",
            "Local hour with the largest smoothed share (ties: earliest)",
            window,
            "hour 0-23",
            SOURCE,
            NAME,
        )
    )
    definitions.append(
        FeatureDef(
            "preferred_weekday",
            "Weekday with the largest smoothed share, Monday = 0",
            window,
            "weekday 0-6",
            SOURCE,
            NAME,
        )
    )
    return tuple(definitions)


FEATURES = _definitions()


def utc_offsets(time_zones: list[str], first_day: pd.Timestamp, last_day: pd.Timestamp) -> pd.DataFrame:
    """Minutes to add to UTC for every (time zone, day), taken at noon UTC of that day.

    Unknown zone names are left out (their customers stay in UTC) with a warning.
    """
    days = pd.date_range(first_day.normalize(), last_day.normalize(), freq="D")
    noon_utc = (days + pd.Timedelta(hours=12)).tz_localize("UTC")
    frames = []
    unknown = []
    for name in time_zones:
        try:
            local = noon_utc.tz_convert(zoneinfo.ZoneInfo(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            unknown.append(name)
            continue
        offset = (local.tz_localize(None) - noon_utc.tz_localize(None)) // pd.Timedelta(minutes=1)
        frames.append(pd.DataFrame({"timezone": name, "day": days.date, "offset_minutes": np.asarray(offset, "int64")}))
    if unknown:
        logger.warning("unknown time zones treated as UTC: %s", ", ".join(sorted(unknown)[:5]))
    if not frames:
        return pd.DataFrame(
            {
                "timezone": pd.Series(dtype="str"),
                "day": pd.Series(dtype="object"),
                "offset_minutes": pd.Series(dtype="int64"),
            }
        )
    return pd.concat(frames, ignore_index=True)


def _responses(context: SnapshotContext) -> ir.Table:
    """customer_id and local hour and weekday of every response in the profile window."""
    start = context.since(PROFILE_DAYS)
    orders = context.orders
    parts = [orders.filter(orders.ts >= start).select("customer_id", "ts")]
    events = context.events
    if events is not None:
        responded = events.event_type.isin(["open", "click"]) & (events.ts >= start)
        parts.append(events.filter(responded).select("customer_id", "ts"))
    responses = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    local_ts = responses.ts
    if context.has_column("customers", "timezone"):
        responses = _with_offsets(responses, context)
        local_ts = responses.ts + responses.offset_minutes.fill_null(0).as_interval("m")
    return responses.select("customer_id", hour=local_ts.hour(), weekday=local_ts.day_of_week.index())


def _with_offsets(responses: ir.Table, context: SnapshotContext) -> ir.Table:
    customers = context.customers
    zones = customers.select("timezone").filter(customers.timezone.notnull()).distinct()
    names = sorted(zones.to_pyarrow().column("timezone").to_pylist())
    offsets = utc_offsets(names, context.as_of - pd.Timedelta(days=PROFILE_DAYS + 1), context.as_of)
    offsets_table = ibis.memtable(offsets, schema={"timezone": "string", "day": "date", "offset_minutes": "int64"})
    zoned = responses.left_join(customers.select("customer_id", "timezone"), "customer_id").drop("customer_id_right")
    zoned = zoned.mutate(_day=zoned.ts.date())
    joined = zoned.left_join(
        offsets_table,
        [zoned.timezone == offsets_table.timezone, zoned._day == offsets_table.day],
    )
    return joined.select("customer_id", "ts", "offset_minutes")


def build(context: SnapshotContext) -> list[ir.Table]:
    """Counts per local hour and weekday in one scan, then the smoothed profiles."""
    responses = _responses(context)
    reductions: dict[str, ir.Value] = {"responses_365d": responses.count()}
    for hour in HOURS:
        reductions[f"hour_{hour:02d}"] = count_where(responses.hour == hour)
    for day in WEEKDAYS:
        reductions[f"day_{day}"] = count_where(responses.weekday == day)
    counts = responses.group_by("customer_id").aggregate(**reductions)
    hour_counts = {hour: counts[f"hour_{hour:02d}"].cast("float64") for hour in HOURS}
    denominator = counts.responses_365d.cast("float64") + real(PRIOR_RESPONSES)
    shares: dict[str, ir.Value] = {}
    for hour in HOURS:
        before, now, after = (hour_counts[(hour + step) % 24] for step in (-1, 0, 1))
        smoothed = real(0.25) * before + real(0.5) * now + real(0.25) * after
        shares[f"hour_profile_{hour:02d}"] = (smoothed + real(PRIOR_RESPONSES / 24)) / denominator
    for day in WEEKDAYS:
        day_count = counts[f"day_{day}"].cast("float64")
        shares[f"weekday_profile_{day}"] = (day_count + real(PRIOR_RESPONSES / 7)) / denominator
    profile = counts.select("customer_id", "responses_365d", **shares)
    hour_columns = [profile[f"hour_profile_{hour:02d}"] for hour in HOURS]
    day_columns = [profile[f"weekday_profile_{day}"] for day in WEEKDAYS]
    dayparts = {
        f"daypart_share_{part}": sum(hour_columns[start + 1 : end], hour_columns[start])
        for part, start, end in DAYPARTS
    }
    profile = profile.mutate(
        **dayparts,
        weekend_share=profile.weekday_profile_5 + profile.weekday_profile_6,
        top_hour_share=ibis.greatest(*hour_columns),
        top_day_share=ibis.greatest(*day_columns),
    )
    profile = profile.mutate(
        preferred_hour=_first_at_least(hour_columns, profile.top_hour_share),
        preferred_weekday=_first_at_least(day_columns, profile.top_day_share),
    )
    return [keep_declared(profile, FEATURES)]


def _first_at_least(shares: list[ir.FloatingValue], largest: ir.FloatingValue) -> ir.IntegerValue:
    """Index of the first share that equals the largest (the earliest on ties)."""
    return ibis.cases(*((share >= largest, index) for index, share in enumerate(shares)))


FAMILY = Family(NAME, FEATURES, build=build)
