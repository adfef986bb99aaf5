"""Tests that train_gan warns on each training failure and stays silent otherwise."""

import warnings

import numpy as np
import torch
from torch import nn

import gan_helpers as gh

CONTEXT_LENGTH = 6
HORIZON = 3
NOISE_SIZE = 4
BATCH_SIZE = 32


class ReluOutputDiscriminator(gh.Discriminator):
    """A ReLU on the output read as a probability, with a negative bias."""

    def __init__(self, context_length, horizon, hidden_size=16):
        super().__init__(context_length, horizon, hidden_size=hidden_size)
        self.net.append(nn.ReLU())
        # Every pre-activation starts below zero, so every output is 0.
        nn.init.constant_(self.net[-2].bias, -1.0)

    def forward(self, context, continuation):
        probability = super().forward(context, continuation)
        # train_gan applies BCEWithLogitsLoss, so hand it the logit.
        return torch.logit(probability, eps=1e-6)


class ShiftedGenerator(gh.Generator):
    """Returns the last context value plus 3, whatever its weights."""

    def forward(self, context, noise):
        output = super().forward(context, noise)
        last_value = context[:, -1:] if output.ndim == 2 else context[:, None, -1:]
        # 0 * output keeps every parameter in the graph with a zero gradient.
        return 0.0 * output + last_value + 3.0


class ZeroNoiseGenerator(gh.Generator):
    """Scales its noise by 0, so every sample for a context is the same."""

    def sample_noise(self, shape, device, rng=None):
        return 0.0 * super().sample_noise(shape, device, rng)


class NanFromStepDiscriminator(gh.Discriminator):
    """Returns NaN logits from training step `NAN_STEP` on."""

    NAN_STEP = 7

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_calls = 0

    def forward(self, context, continuation):
        self.num_calls += 1
        logits = super().forward(context, continuation)
        # Each train_gan step calls the discriminator three times: on the real
        # and the fake batch of its own step, then on the generator's step.
        if self.num_calls > 3 * (self.NAN_STEP - 1):
            logits = logits * float("nan")
        return logits


def make_networks(generator_class=gh.Generator, discriminator_class=gh.Discriminator,
                  seed=0):
    torch.manual_seed(seed)
    generator = generator_class(CONTEXT_LENGTH, HORIZON, noise_size=NOISE_SIZE,
                                hidden_size=8)
    discriminator = discriminator_class(CONTEXT_LENGTH, HORIZON, hidden_size=16)
    return generator, discriminator


def make_windows(num_windows=256, noise_std=0.1, seed=0):
    # A noisy sine: there is something to learn, and samples should spread.
    rng = np.random.default_rng(seed)
    num_values = num_windows + CONTEXT_LENGTH + HORIZON - 1
    values = np.sin(np.arange(num_values) * 0.3)
    values += rng.normal(0.0, noise_std, size=num_values)
    return gh.make_windows(values, CONTEXT_LENGTH, HORIZON)


def train_recording(generator, discriminator, **options):
    """Train on the toy windows; return the history and the warning messages."""
    contexts, futures = options.pop("windows", None) or make_windows()
    # A constant learning rate, so that a symptom is not masked by a rate
    # that has decayed by the end of these short runs.
    settings = {"epochs": 4, "batch_size": BATCH_SIZE, "log_every": 2,
                "patience": 5, "progress": False, "final_lr_scale": 1.0}
    settings.update(options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = gh.train_gan(generator, discriminator, contexts, futures,
                               **settings)
    messages = [str(w.message) for w in caught
                if issubclass(w.category, gh.TrainingWarning)]
    return history, messages


def test_healthy_run_is_silent():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with warnings.catch_warnings():
        warnings.simplefilter("error", gh.TrainingWarning)
        history = gh.train_gan(generator, discriminator, contexts, futures,
                               epochs=4, batch_size=BATCH_SIZE, log_every=2,
                               patience=5, progress=False)
    # 256 // 32 = 8 steps per epoch, a record every 2 steps.
    assert len(history) == 16
    assert np.isfinite(history.drop(columns=["epoch", "step"]).to_numpy()).all()


def test_dead_discriminator_warns():
    generator, discriminator = make_networks(
        discriminator_class=ReluOutputDiscriminator)
    before = {name: p.detach().clone() for name, p in generator.named_parameters()}
    history, messages = train_recording(generator, discriminator, crps_weight=0.0)
    dead = [m for m in messages if m.startswith("dead discriminator")]
    assert len(dead) == 1, messages
    assert "loss_d has stayed at 13.8155 for 5 log records" in dead[0]
    assert history["loss_d"].nunique() == 1
    assert (history["grad_norm_d"] == 0).all()
    assert (history["grad_norm_g"] == 0).all()
    # Adam leaves a weight unchanged while every gradient it has seen is 0.
    for name, parameter in generator.named_parameters():
        assert torch.equal(parameter.detach(), before[name]), name


def test_discriminator_wins_warns():
    generator, discriminator = make_networks(generator_class=ShiftedGenerator)
    history, messages = train_recording(generator, discriminator,
                                        learning_rate=1e-2)
    wins = [m for m in messages if m.startswith("the discriminator wins outright")]
    assert len(wins) == 1, messages
    expected = "D(fake) has stayed below 0.05, with D(real) above 0.5, for 5 log records"
    assert expected in wins[0]
    assert history["d_fake_before"].tail(5).max() < 0.05
    assert history["d_real"].tail(5).min() > 0.95


def test_mode_collapse_warns():
    generator, discriminator = make_networks(generator_class=ZeroNoiseGenerator)
    history, messages = train_recording(generator, discriminator, epochs=2)
    collapse = [m for m in messages if m.startswith("mode collapse")]
    assert len(collapse) == 1, messages
    assert "below 0.01 for 5 log records" in collapse[0]
    assert (history["sample_spread"] == 0).all()


def test_nan_logits_stop_at_their_step():
    generator, discriminator = make_networks(
        discriminator_class=NanFromStepDiscriminator)
    history, messages = train_recording(generator, discriminator)
    stopped = [m for m in messages if m.startswith("training stopped")]
    assert len(stopped) == 1, messages
    assert stopped[0].startswith("training stopped at step 7: a loss is NaN")
    # Records every 2 steps, then the record of the step that stopped.
    assert history["step"].tolist() == [2, 4, 6, 7]
    assert np.isfinite(history["loss_d"].iloc[:3]).all()
    assert np.isnan(history["loss_d"].iloc[3])


def test_infinite_learning_rate_stops_at_step_one():
    generator, discriminator = make_networks()
    # The discriminator's first update is an infinite step, so the
    # generator's loss in the same step is already NaN.
    history, messages = train_recording(generator, discriminator,
                                        learning_rate=float("inf"), log_every=1)
    stopped = [m for m in messages if m.startswith("training stopped")]
    assert len(stopped) == 1, messages
    assert stopped[0].startswith("training stopped at step 1: a loss is NaN")
    assert history["step"].tolist() == [1]
    assert np.isfinite(history["loss_d"].iloc[0])
    assert np.isnan(history["loss_g"].iloc[0])


def test_each_symptom_warns_once():
    generator, discriminator = make_networks(generator_class=ZeroNoiseGenerator)
    _, messages = train_recording(generator, discriminator, epochs=4)
    # 16 records of zero spread: the warning fires at record 5, not again.
    assert sum(m.startswith("mode collapse") for m in messages) == 1
