"""Unit tests of the forecast metrics: MAE, RMSE, CRPS, coverage and PIT."""

import math

import numpy as np
import pytest

import gan_helpers as gh


def normal_cdf(x, mean, std):
    return 0.5 * (1 + np.vectorize(math.erf)((x - mean) / (std * math.sqrt(2))))


def test_mae_known_values():
    assert gh.mae([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]) == pytest.approx(1.0)


def test_rmse_known_values():
    assert gh.rmse([1.0, 2.0, 3.0], [2.0, 2.0, 5.0]) == pytest.approx(math.sqrt(5 / 3))


def test_mae_rmse_two_dimensional():
    forecast = np.array([[0.0, 0.0], [0.0, 0.0]])
    truth = np.array([[3.0, -3.0], [0.0, 0.0]])
    assert gh.mae(forecast, truth) == pytest.approx(1.5)
    assert gh.rmse(forecast, truth) == pytest.approx(math.sqrt(4.5))


@pytest.mark.parametrize("mean, std, truth", [(0.0, 1.0, 0.3), (2.0, 0.5, 1.1),
                                              (-1.0, 3.0, 6.0)])
def test_crps_gaussian_matches_integral(mean, std, truth):
    # CRPS = integral of (F(x) - 1{x >= y})^2 dx, split at y where the
    # indicator jumps, on +-12 standard deviations.
    below = np.linspace(min(mean - 12 * std, truth), truth, 200_001)
    above = np.linspace(truth, max(mean + 12 * std, truth), 200_001)
    integral = (np.trapezoid(normal_cdf(below, mean, std) ** 2, below)
                + np.trapezoid((normal_cdf(above, mean, std) - 1) ** 2, above))
    assert gh.crps_gaussian(mean, std, truth) == pytest.approx(integral, rel=1e-6)


def test_crps_gaussian_at_mean():
    # At y = mean the closed form reduces to std * (2 phi(0) - 1/sqrt(pi)).
    expected = 2.0 * (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi))
    assert gh.crps_gaussian(1.0, 2.0, 1.0) == pytest.approx(expected, rel=1e-12)


def test_crps_gaussian_averages_windows():
    truths = np.array([0.3, -1.2, 2.0])
    one_by_one = [gh.crps_gaussian(0.5, 1.5, truth) for truth in truths]
    assert gh.crps_gaussian(0.5, 1.5, truths) == pytest.approx(np.mean(one_by_one))


def test_crps_samples_match_gaussian():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(size=200), rng.uniform(0.5, 2.0, size=200)
    truth = rng.normal(mean, std)
    samples = rng.normal(mean[:, None], std[:, None], size=(200, 2000))
    expected = gh.crps_gaussian(mean, std, truth)
    assert gh.crps_from_samples(samples, truth) == pytest.approx(expected, rel=0.01)


def test_crps_one_sample_equals_mae():
    rng = np.random.default_rng(1)
    samples, truth = rng.normal(size=(50, 1)), rng.normal(size=50)
    assert gh.crps_from_samples(samples, truth) == pytest.approx(
        gh.mae(samples[:, 0], truth), rel=1e-12)


def test_crps_one_sample_equals_mae_with_horizon():
    rng = np.random.default_rng(2)
    samples, truth = rng.normal(size=(20, 1, 4)), rng.normal(size=(20, 4))
    assert gh.crps_from_samples(samples, truth) == pytest.approx(
        gh.mae(samples[:, 0], truth), rel=1e-12)


@pytest.mark.parametrize("shape", [(6, 9), (6, 9, 3)])
def test_crps_samples_match_pairwise_definition(shape):
    # E|X - y| - E|X - X'| / 2 over the empirical distribution, by brute force.
    rng = np.random.default_rng(3)
    samples = rng.normal(size=shape)
    truth = rng.normal(size=shape[:1] + shape[2:])
    error = np.abs(samples - truth[:, None]).mean(axis=1)
    spread = np.abs(samples[:, :, None] - samples[:, None, :]).mean(axis=(1, 2))
    expected = np.mean(error - spread / 2)
    assert gh.crps_from_samples(samples, truth) == pytest.approx(expected, rel=1e-12)


def test_crps_rewards_right_spread():
    rng = np.random.default_rng(4)
    truth = rng.normal(size=500)
    calibrated = rng.normal(size=(500, 200))
    too_narrow = 0.1 * rng.normal(size=(500, 200))
    assert gh.crps_from_samples(calibrated, truth) < gh.crps_from_samples(too_narrow,
                                                                         truth)


def test_interval_coverage_known_samples():
    # Samples 0..100 per window: the central 90% interval is [5, 95].
    samples = np.tile(np.arange(101.0), (5, 1))
    truth = np.array([50.0, 3.0, 96.0, 5.0, 95.0])
    assert gh.interval_coverage(samples, truth, 0.9) == pytest.approx(0.6)


def test_interval_coverage_with_horizon():
    samples = np.tile(np.arange(101.0)[None, :, None], (2, 1, 2))
    # The central 50% interval is [25, 75], so only 50.0 is inside.
    truth = np.array([[10.0, 50.0], [1.0, 99.0]])
    assert gh.interval_coverage(samples, truth, 0.5) == pytest.approx(0.25)


def test_interval_coverage_calibrated_samples():
    rng = np.random.default_rng(5)
    samples, truth = rng.normal(size=(4000, 200)), rng.normal(size=4000)
    assert gh.interval_coverage(samples, truth, 0.8) == pytest.approx(0.8, abs=0.03)


def test_pit_known_values():
    samples = np.tile(np.arange(10.0), (3, 1))
    np.testing.assert_allclose(gh.pit_values(samples, [4.5, -1.0, 10.0]),
                               [0.5, 0.0, 1.0])


def test_pit_uniform_for_calibrated_samples():
    rng = np.random.default_rng(6)
    samples, truth = rng.normal(size=(2000, 100)), rng.normal(size=2000)
    pit = gh.pit_values(samples, truth)
    counts, _ = np.histogram(pit, bins=10, range=(0, 1.0001))
    # 200 per bin expected; the binomial standard deviation is about 13.
    assert counts.min() > 140
    assert counts.max() < 260


def test_pit_piles_up_for_narrow_samples():
    rng = np.random.default_rng(7)
    samples, truth = 0.2 * rng.normal(size=(2000, 100)), rng.normal(size=2000)
    pit = gh.pit_values(samples, truth)
    assert np.mean((pit == 0) | (pit == 1)) > 0.5


def test_pit_flattens_horizon():
    samples = np.zeros((3, 5, 2))
    assert gh.pit_values(samples, np.ones((3, 2))).shape == (6,)
