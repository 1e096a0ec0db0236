"""htmc.rates.fits.resolution_rates: the rates a ladder's input resolution alone implies (issue 15)."""
import math

import pytest

from htmc.rates.fits import resolution_rates


def test_table_and_shannon_rates_of_holder_d2_s05_bits():
    eps, bits = [0.4, 0.2, 0.1, 0.05], [8, 12, 16, 20]
    r = resolution_rates(eps, bits)
    assert r["table"] == pytest.approx(4.0, abs=1e-12)
    # slope of n - log2 n over x = 0..3 (mean 1.5), by hand
    y = [n - math.log2(n) for n in bits]
    by_hand = sum((i - 1.5) * (v - sum(y) / 4) for i, v in enumerate(y)) / 5
    assert r["shannon"] == pytest.approx(by_hand, abs=1e-12) and r["shannon"] == pytest.approx(3.562, abs=1e-3)


def test_a_resolution_that_outgrows_one_over_s_lifts_the_table_rate():
    # holder d=3 s=1 seed 0 (2026-12-02): k = 3, 5, 6, 7 at eps = 0.4 .. 0.05, i.e. 9, 15, 18, 21 bits
    assert resolution_rates([0.4, 0.2, 0.1, 0.05], [9, 15, 18, 21])["table"] == pytest.approx(3.9, abs=1e-12)


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="eps must be finite and > 0"):
        resolution_rates([0.1, 0.0], [8, 12])
    with pytest.raises(ValueError, match="same length"):
        resolution_rates([0.1, 0.05], [8])
