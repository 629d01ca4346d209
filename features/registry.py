"""The feature registry: every feature declared once, and named, versioned feature sets.

`nbo features list` and the README's feature reference both come from here (`markdown_table`).
A `FeatureSet` is like a Feast FeatureService: a name, a version bumped whenever its
definitions change meaning, and the feature names; `fingerprint` hashes the definitions so a
trained model can record exactly which features it saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from features.dataset import Dataset
from features.families import FAMILIES
from features.families.common import FeatureDef

__all__ = [
    "FEATURES",
    "FEATURE_SETS",
    "FeatureDef",
    "FeatureSet",
    "feature_set",
    "features_for",
    "markdown_table",
]

#: Every feature by name, in snapshot column order.
FEATURES: dict[str, FeatureDef] = {definition.name: definition for family in FAMILIES for definition in family.features}


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned list of feature names."""

    name: str
    version: int
    features: tuple[str, ...]
    description: str = ""

    @property
    def fingerprint(self) -> str:
        """Short hash of the member definitions (name, window, unit, source, description)."""
        digest = hashlib.sha256()
        for name in self.features:
            definition = FEATURES[name]
            digest.update(
                repr(
                    (name, definition.window_days, definition.unit, definition.source_table, definition.description)
                ).encode()
            )
        return digest.hexdigest()[:12]


def _family_members(*families: str) -> tuple[str, ...]:
    return tuple(name for name, definition in FEATURES.items() if definition.family in families)


def _from_transactions_alone() -> tuple[str, ...]:
    return tuple(
        name
        for name, definition in FEATURES.items()
        if "transactions" in (definition.source_table, definition.fallback_table)
    )


FEATURE_SETS: dict[str, FeatureSet] = {
    feature_set.name: feature_set
    for feature_set in (
        FeatureSet("all", 1, tuple(FEATURES), "Every feature the data set's tables allow"),
        FeatureSet(
            "transactions_only",
            1,
            _from_transactions_alone(),
            "Features an order export alone can give",
        ),
        FeatureSet("rfm", 1, _family_members("rfm"), "Recency, frequency, monetary and scores"),
        FeatureSet("engagement", 1, _family_members("engagement"), "Per-channel engagement"),
        FeatureSet(
            "rfm_engagement",
            1,
            _family_members("rfm", "engagement"),
            "RFM and engagement (the benchmark's pandas comparison subset)",
        ),
        FeatureSet(
            "send_time",
            1,
            _family_members("timing"),
            "Hour and weekday response profiles for the send-time model",
        ),
    )
}


def feature_set(name: str) -> FeatureSet:
    """The feature set called `name`; ValueError listing the known ones otherwise."""
    try:
        return FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(FEATURE_SETS)
        raise ValueError(f"unknown feature set {name!r}; known sets: {known}") from None


def features_for(dataset: Dataset) -> list[FeatureDef]:
    """The features `dataset` can produce, given which tables and columns it has."""
    return [definition for definition in FEATURES.values() if definition.producible(dataset)]


def markdown_table(set_name: str = "all") -> str:
    """A Markdown table of the features in `set_name`, for the README and `nbo features list`."""
    rows = [
        "| feature | family | window | unit | source | description |",
        "|---|---|---|---|---|---|",
    ]
    for name in feature_set(set_name).features:
        definition = FEATURES[name]
        window = f"{definition.window_days}d" if definition.window_days else "all history"
        source = definition.source_table
        if definition.fallback_table:
            source = f"{source} (else {definition.fallback_table})"
        description = definition.description.replace("|", "\\|")
        rows.append(f"| `{name}` | {definition.family} | {window} | {definition.unit} | {source} | {description} |")
    return "\n".join(rows) + "\n"
