"""Float features are rounded to ten significant digits, so parallel float sums cannot change a snapshot."""

from __future__ import annotations

import numpy as np

from features.snapshot import SIGNIFICANT_DIGITS, round_significant


def test_last_bit_differences_from_summation_order_vanish():
    amounts = np.random.default_rng(0).integers(1, 100_000, size=2_000) / 100  # prices in cents
    forward, backward = np.cumsum(amounts)[-1], np.cumsum(amounts[::-1])[-1]
    pairwise = np.array([0.1 + 0.2 + 0.3, 0.3 + 0.2 + 0.1, forward, backward])
    assert pairwise[0] != pairwise[1], "the fixture should differ in the last bits before rounding"
    rounded = round_significant(pairwise)
    assert rounded[0] == rounded[1] and rounded[2] == rounded[3]


def test_ten_significant_digits_at_every_magnitude_and_special_values_kept():
    values = np.array([-12345.678901234, 3.14159265358979e-7, 98765432109876.5, 0.0, np.nan, np.inf])
    rounded = round_significant(values)
    assert SIGNIFICANT_DIGITS == 10
    np.testing.assert_array_equal(rounded[:3], [-12345.6789, 3.141592654e-7, 98765432110000.0])
    assert rounded[3] == 0.0 and np.isnan(rounded[4]) and np.isinf(rounded[5])
    np.testing.assert_array_equal(round_significant(rounded), rounded)
