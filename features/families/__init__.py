"""Feature families, one module each, in the order the snapshot computes them.

Each module declares `FEATURES` (its `FeatureDef`s) and `FAMILY` (how to compute them).
"""

from __future__ import annotations

from features.families import (
    engagement,
    lifecycle,
    products,
    rfm,
    rhythm,
    subscriptions,
    tenure,
    timing,
)
from features.families.common import Family

#: Every family; later ones may read earlier ones' columns in `finish`.
FAMILIES: tuple[Family, ...] = (
    rfm.FAMILY,
    rhythm.FAMILY,
    tenure.FAMILY,
    engagement.FAMILY,
    products.FAMILY,
    timing.FAMILY,
    subscriptions.FAMILY,
    lifecycle.FAMILY,
)
