"""The README's feature reference comes from the registry, so the two cannot drift apart."""

from pathlib import Path

from features.registry import FEATURE_SETS, markdown_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"


def test_feature_reference_matches_the_registry():
    text = DOCS.read_text()
    assert markdown_table() in text, "docs/FEATURES.md is stale: regenerate it from features.registry"
    for feature_set in FEATURE_SETS.values():
        assert f"`{feature_set.name}` v{feature_set.version} ({len(feature_set.features)} features)" in text
