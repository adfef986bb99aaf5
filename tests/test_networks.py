"""Unit tests of the two networks, the training steps, the loop and sampling."""

import warnings

import numpy as np
import pytest
import torch

import gan_helpers as gh

CONTEXT_LENGTH = 6
HORIZON = 3
NOISE_SIZE = 4
BATCH_SIZE = 5


def make_networks(seed=0):
    torch.manual_seed(seed)
    generator = gh.Generator(CONTEXT_LENGTH, HORIZON, noise_size=NOISE_SIZE,
                             hidden_size=8)
    discriminator = gh.Discriminator(CONTEXT_LENGTH, HORIZON, hidden_size=16)
    return generator, discriminator


def make_batch(batch_size=BATCH_SIZE, seed=1):
    rng = torch.Generator().manual_seed(seed)
    context = torch.randn(batch_size, CONTEXT_LENGTH, generator=rng)
    future = torch.randn(batch_size, HORIZON, generator=rng)
    return context, future


def copy_parameters(module):
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def changed_parameters(module, before):
    return {name for name, p in module.named_parameters()
            if not torch.equal(p.detach(), before[name])}


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sees_context", [True, False])
def test_discriminator_output_shape(sees_context):
    discriminator = gh.Discriminator(CONTEXT_LENGTH, HORIZON, hidden_size=16,
                                     sees_context=sees_context)
    context, future = make_batch()
    assert discriminator(context, future).shape == (BATCH_SIZE, 1)


def test_discriminator_without_context_ignores_it():
    discriminator = gh.Discriminator(CONTEXT_LENGTH, HORIZON, hidden_size=16,
                                     sees_context=False)
    context, future = make_batch()
    torch.testing.assert_close(
        discriminator(context, future), discriminator(context + 5.0, future)
    )


def test_generator_output_shape_one_sample():
    generator, _ = make_networks()
    context, _ = make_batch()
    noise = torch.randn(BATCH_SIZE, NOISE_SIZE)
    assert generator(context, noise).shape == (BATCH_SIZE, HORIZON)


def test_generator_output_shape_many_samples():
    generator, _ = make_networks()
    context, _ = make_batch()
    noise = torch.randn(BATCH_SIZE, 7, NOISE_SIZE)
    assert generator(context, noise).shape == (BATCH_SIZE, 7, HORIZON)


def test_generator_samples_match_single_calls():
    # Noise (B, S, noise_size) must give the same continuations as S calls.
    generator, _ = make_networks()
    context, _ = make_batch()
    noise = torch.randn(BATCH_SIZE, 3, NOISE_SIZE)
    samples = generator(context, noise)
    for index in range(3):
        single = generator(context, noise[:, index])
        torch.testing.assert_close(samples[:, index], single)


def test_generator_noise_changes_output():
    generator, _ = make_networks()
    context, _ = make_batch()
    first = generator(context, torch.randn(BATCH_SIZE, NOISE_SIZE))
    second = generator(context, torch.randn(BATCH_SIZE, NOISE_SIZE))
    assert not torch.allclose(first, second)


def test_generator_sample_noise_shape():
    generator, _ = make_networks()
    assert generator.sample_noise(4, "cpu").shape == (4, NOISE_SIZE)
    assert generator.sample_noise((4, 2), "cpu").shape == (4, 2, NOISE_SIZE)


@pytest.mark.parametrize(
    "shape", [(BATCH_SIZE, CONTEXT_LENGTH + 1), (BATCH_SIZE, CONTEXT_LENGTH, 2),
              (CONTEXT_LENGTH,)],
    ids=["wrong length", "two features", "no batch axis"],
)
def test_generator_wrong_context_shape(shape):
    generator, _ = make_networks()
    noise = torch.randn(BATCH_SIZE, NOISE_SIZE)
    expected = rf"expected context of shape \(batch, {CONTEXT_LENGTH}\)"
    with pytest.raises(ValueError, match=expected):
        generator(torch.zeros(shape), noise)


@pytest.mark.parametrize(
    "shape", [(BATCH_SIZE, NOISE_SIZE + 1), (BATCH_SIZE + 1, NOISE_SIZE),
              (NOISE_SIZE,), (BATCH_SIZE, 2, 2, NOISE_SIZE)],
    ids=["wrong noise size", "wrong batch", "1-D", "4-D"],
)
def test_generator_wrong_noise_shape(shape):
    generator, _ = make_networks()
    context, _ = make_batch()
    expected = (rf"expected noise of shape \({BATCH_SIZE}, {NOISE_SIZE}\) or "
                rf"\({BATCH_SIZE}, samples, {NOISE_SIZE}\)")
    with pytest.raises(ValueError, match=expected):
        generator(context, torch.zeros(shape))


def test_discriminator_two_features_rejected():
    _, discriminator = make_networks()
    context, future = make_batch()
    expected = (rf"expected context \(batch, {CONTEXT_LENGTH}\) and continuation "
                rf"\(batch, {HORIZON}\), one feature per time step")
    with pytest.raises(ValueError, match=expected):
        discriminator(torch.stack([context, context], dim=-1), future)


@pytest.mark.parametrize(
    "context_length, horizon", [(CONTEXT_LENGTH + 1, HORIZON),
                                (CONTEXT_LENGTH, HORIZON - 1)],
)
def test_discriminator_wrong_lengths(context_length, horizon):
    _, discriminator = make_networks()
    expected = (rf"expected context \(batch, {CONTEXT_LENGTH}\) and continuation "
                rf"\(batch, {HORIZON}\), one feature per time step; got "
                rf"\({BATCH_SIZE}, {context_length}\) and \({BATCH_SIZE}, {horizon}\)")
    with pytest.raises(ValueError, match=expected):
        discriminator(torch.zeros(BATCH_SIZE, context_length),
                      torch.zeros(BATCH_SIZE, horizon))


def test_discriminator_batch_mismatch():
    _, discriminator = make_networks()
    with pytest.raises(ValueError, match="batch sizes differ: 4 and 5"):
        discriminator(torch.zeros(4, CONTEXT_LENGTH), torch.zeros(5, HORIZON))


# ---------------------------------------------------------------------------
# One training step changes only the network it trains
# ---------------------------------------------------------------------------


def test_discriminator_step_updates_only_discriminator():
    generator, discriminator = make_networks()
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    d_before = copy_parameters(discriminator)
    g_before = copy_parameters(generator)
    stats = gh.discriminator_step(discriminator, generator, optimizer, *make_batch())
    assert changed_parameters(discriminator, d_before) == set(d_before)
    assert changed_parameters(generator, g_before) == set()
    # detach() keeps the discriminator's loss from reaching the generator.
    assert all(p.grad is None for p in generator.parameters())
    assert set(stats) == {"loss_d", "grad_norm_d", "d_real", "d_fake_before"}


def test_generator_step_updates_only_generator():
    generator, discriminator = make_networks()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    d_before = copy_parameters(discriminator)
    g_before = copy_parameters(generator)
    stats = gh.generator_step(discriminator, generator, optimizer, *make_batch())
    assert changed_parameters(generator, g_before) == set(g_before)
    assert changed_parameters(discriminator, d_before) == set()
    assert set(stats) == {"loss_g", "d_fake_after", "grad_norm_g"}


@pytest.mark.parametrize("crps_weight", [0.0, 1.0])
@pytest.mark.parametrize("loss", ["non_saturating", "saturating"])
def test_generator_step_loss_variants(loss, crps_weight):
    generator, discriminator = make_networks()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    g_before = copy_parameters(generator)
    stats = gh.generator_step(discriminator, generator, optimizer, *make_batch(),
                              crps_weight=crps_weight, loss=loss)
    assert changed_parameters(generator, g_before) == set(g_before)
    assert np.isfinite(stats["loss_g"])


def test_generator_step_invalid_loss():
    generator, discriminator = make_networks()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="invalid loss='hinge'"):
        gh.generator_step(discriminator, generator, optimizer, *make_batch(),
                          loss="hinge")


def test_sample_crps_zero_for_exact_samples():
    truth = torch.randn(4, HORIZON)
    assert gh.sample_crps(truth, truth, truth).item() == 0.0


def test_sample_crps_one_sample_pair():
    truth = torch.zeros(1, 1)
    first, second = torch.tensor([[1.0]]), torch.tensor([[-3.0]])
    # (|1| + |-3|) / 2 - |1 - (-3)| / 2 = 2 - 2
    assert gh.sample_crps(first, second, truth).item() == pytest.approx(0.0)
    assert gh.sample_crps(first, first, truth).item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Every tensor of a training step is on the model's device
# ---------------------------------------------------------------------------

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA device")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_training_step_tensors_on_model_device(device):
    device = torch.device(device)
    generator, discriminator = make_networks()
    generator.to(device)
    discriminator.to(device)
    seen = []

    def record_lstm_inputs(module, args):
        sequence, (hidden, cell) = args
        seen.extend([("lstm input", sequence.device), ("lstm h0", hidden.device),
                     ("lstm c0", cell.device)])

    def record_discriminator_input(module, args):
        seen.append(("discriminator input", args[0].device))

    sample_noise = generator.sample_noise

    def record_noise(*args, **kwargs):
        noise = sample_noise(*args, **kwargs)
        seen.append(("noise", noise.device))
        return noise

    generator.sample_noise = record_noise
    generator.lstm.register_forward_pre_hook(record_lstm_inputs)
    discriminator.net.register_forward_pre_hook(record_discriminator_input)

    context, future = (tensor.to(device) for tensor in make_batch())
    d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    g_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    gh.discriminator_step(discriminator, generator, d_optimizer, context, future)
    gh.generator_step(discriminator, generator, g_optimizer, context, future)
    samples = gh.sample_forecasts(generator, context, num_samples=4)
    paths = gh.roll_out(generator, context[0], steps=5, num_samples=3)

    names = {name for name, _ in seen}
    assert names == {"lstm input", "lstm h0", "lstm c0", "discriminator input",
                     "noise"}
    wrong = [(name, seen_device) for name, seen_device in seen
             if seen_device.type != device.type]
    assert wrong == []
    assert samples.device.type == device.type
    assert paths.device.type == device.type
    for module in (generator, discriminator):
        for name, parameter in module.named_parameters():
            assert parameter.device.type == device.type, name
            assert parameter.grad.device.type == device.type, name


def test_forward_tensors_follow_input_device():
    # The meta device replaces a GPU on a machine without one: a tensor
    # created without device= lands on the CPU, and the hook or LSTM sees it.
    generator, discriminator = make_networks()
    generator.to("meta")
    discriminator.to("meta")
    seen = []

    def record_lstm_inputs(module, args):
        sequence, (hidden, cell) = args
        seen.extend([sequence.device, hidden.device, cell.device])

    generator.lstm.register_forward_pre_hook(record_lstm_inputs)
    context = torch.zeros(BATCH_SIZE, CONTEXT_LENGTH, device="meta")
    noise = generator.sample_noise((BATCH_SIZE, 2), context.device)
    samples = generator(context, noise)
    logits = discriminator(context, samples[:, 0])
    assert [device.type for device in seen] == ["meta"] * 3
    assert noise.device.type == "meta"
    assert samples.device.type == "meta"
    assert logits.device.type == "meta"


# ---------------------------------------------------------------------------
# train_gan
# ---------------------------------------------------------------------------

HISTORY_COLUMNS = {"epoch", "step", "loss_d", "loss_g", "d_real", "d_fake_before",
                   "d_fake_after", "grad_norm_d", "grad_norm_g", "sample_spread",
                   "learning_rate"}


def make_windows(num_values=300 + CONTEXT_LENGTH + HORIZON - 1):
    values = np.sin(np.arange(num_values) * 0.3)
    return gh.make_windows(values, CONTEXT_LENGTH, HORIZON)


def test_train_gan_tiny_run(capsys):
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    assert len(contexts) == 300
    history = gh.train_gan(generator, discriminator, contexts, futures, epochs=2,
                           batch_size=32, log_every=3, patience=1000,
                           progress=False)
    assert set(history.columns) == HISTORY_COLUMNS
    # 300 // 32 = 9 batches per epoch, one record every 3 steps.
    assert history["step"].tolist() == [3, 6, 9, 12, 15, 18]
    assert history["epoch"].tolist() == [1, 1, 1, 2, 2, 2]
    assert np.isfinite(history.drop(columns=["epoch", "step"]).to_numpy()).all()
    # print_every defaults to five log records.
    assert capsys.readouterr().out.count("epoch ") == 1


@pytest.mark.parametrize("final_lr_scale", [0.05, 1.0])
def test_train_gan_learning_rate_schedule(final_lr_scale):
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    history = gh.train_gan(generator, discriminator, contexts, futures, epochs=2,
                           batch_size=30, learning_rate=1e-3,
                           final_lr_scale=final_lr_scale, log_every=1,
                           patience=1000, progress=False)
    # 20 steps: the rate falls by (1 - final_lr_scale) / 20 per step and is
    # recorded after each step's update.
    steps = history["step"].to_numpy()
    expected = 1e-3 * (1 - (1 - final_lr_scale) * steps / 20)
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-9)
    assert history["learning_rate"].iloc[-1] == pytest.approx(1e-3 * final_lr_scale)


@pytest.mark.parametrize("final_lr_scale", [0.0, -0.5, 1.5, float("nan")])
def test_train_gan_invalid_final_lr_scale(final_lr_scale):
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(ValueError, match=r"invalid final_lr_scale=.*\(0, 1\]"):
        gh.train_gan(generator, discriminator, contexts, futures,
                     final_lr_scale=final_lr_scale, progress=False)


@pytest.mark.parametrize("name, value, error", [
    ("epochs", 0, ValueError), ("epochs", -1, ValueError), ("epochs", 1.5, TypeError),
    ("batch_size", 0, ValueError), ("batch_size", -5, ValueError),
    ("batch_size", 32.0, TypeError), ("log_every", 0, ValueError),
    ("log_every", -1, ValueError), ("print_every", 0, ValueError),
    ("patience", 0, ValueError),
])
def test_train_gan_invalid_counts(name, value, error):
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(error, match=f"{name} must be a positive integer, got {value}"):
        gh.train_gan(generator, discriminator, contexts, futures, progress=False,
                     **{name: value})


@pytest.mark.parametrize("final_lr_scale", [None, "0.1", True])
def test_train_gan_final_lr_scale_not_number(final_lr_scale):
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(TypeError, match="final_lr_scale must be a number in"):
        gh.train_gan(generator, discriminator, contexts, futures,
                     final_lr_scale=final_lr_scale, progress=False)


def test_train_gan_numpy_windows_rejected():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(TypeError, match="contexts must be a torch.Tensor, got ndarray"):
        gh.train_gan(generator, discriminator, contexts.numpy(), futures,
                     progress=False)


def test_train_gan_float64_windows_rejected():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(TypeError) as error:
        gh.train_gan(generator, discriminator, contexts, futures.double(),
                     progress=False)
    message = str(error.value)
    assert "futures are torch.float64" in message
    assert "weights are torch.float32" in message
    assert ".to(torch.float32)" in message


def test_train_gan_windows_on_other_device():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(ValueError, match="contexts are on meta but the generator is on cpu"):
        gh.train_gan(generator, discriminator, contexts.to("meta"), futures,
                     progress=False)


def test_sample_forecasts_numpy_contexts_rejected():
    generator, _ = make_networks()
    contexts, _ = make_windows()
    with pytest.raises(TypeError, match="contexts must be a torch.Tensor, got ndarray"):
        gh.sample_forecasts(generator, contexts.numpy(), num_samples=2)


def test_sample_forecasts_zero_chunk_size():
    generator, _ = make_networks()
    contexts, _ = make_windows()
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        gh.sample_forecasts(generator, contexts, num_samples=2, chunk_size=0)


def test_train_gan_nan_input_stops_with_warning():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    futures = futures.clone()
    futures[123, 1] = float("nan")
    with pytest.warns(gh.TrainingWarning) as warned:
        history = gh.train_gan(generator, discriminator, contexts, futures,
                               epochs=2, batch_size=30, log_every=100,
                               patience=1000, progress=False)
    stopped = [str(w.message) for w in warned if "training stopped" in str(w.message)]
    # 300 windows in batches of 30 drop nothing, so the NaN window is in one
    # of the first 10 steps and the loop stops there.
    assert len(history) == 1
    step = int(history["step"].iloc[0])
    assert 1 <= step <= 10
    assert stopped == [stopped[0]]
    assert f"training stopped at step {step}: a loss is NaN" in stopped[0]
    assert np.isnan(history["loss_d"].iloc[0])


def test_train_gan_length_mismatch():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(ValueError, match="contexts and futures differ in length"):
        gh.train_gan(generator, discriminator, contexts, futures[:-1],
                     progress=False)


def test_train_gan_batch_larger_than_data():
    generator, discriminator = make_networks()
    contexts, futures = make_windows()
    with pytest.raises(ValueError, match="only 300 windows for batch_size=512"):
        gh.train_gan(generator, discriminator, contexts, futures, batch_size=512,
                     progress=False)


def test_train_gan_warns_on_collapse():
    generator, discriminator = make_networks()
    # A head whose noise weights are zero ignores the noise: mode collapse.
    with torch.no_grad():
        generator.head[0].weight[:, -NOISE_SIZE:] = 0.0
    generator.head[0].weight.requires_grad_(False)
    contexts, futures = make_windows()
    with pytest.warns(gh.TrainingWarning, match="mode collapse"):
        gh.train_gan(generator, discriminator, contexts, futures, epochs=1,
                     batch_size=30, log_every=1, patience=3, progress=False)


# ---------------------------------------------------------------------------
# Sampling and roll-out
# ---------------------------------------------------------------------------


def test_sample_forecasts_shape_and_seed():
    generator, _ = make_networks()
    contexts, _ = make_batch(batch_size=7)
    first = gh.sample_forecasts(generator, contexts, num_samples=11, seed=3)
    second = gh.sample_forecasts(generator, contexts, num_samples=11, seed=3)
    other = gh.sample_forecasts(generator, contexts, num_samples=11, seed=4)
    assert first.shape == (7, 11, HORIZON)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)


def test_sample_forecasts_chunks_keep_shape():
    generator, _ = make_networks()
    contexts, _ = make_batch(batch_size=7)
    samples = gh.sample_forecasts(generator, contexts, num_samples=5, chunk_size=3)
    assert samples.shape == (7, 5, HORIZON)


def test_sample_forecasts_leaves_global_seed():
    generator, _ = make_networks()
    contexts, _ = make_batch()
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    gh.sample_forecasts(generator, contexts, num_samples=4)
    assert torch.equal(torch.rand(3), expected)


def test_roll_out_shape():
    generator, _ = make_networks()
    context, _ = make_batch(batch_size=1)
    # 8 steps need three calls of horizon 3; the last call is cut to 2 steps.
    assert gh.roll_out(generator, context[0], steps=8, num_samples=4).shape == (4, 8)


def test_roll_out_is_conditioned_on_context():
    generator, _ = make_networks()
    context, _ = make_batch(batch_size=1)
    paths = gh.roll_out(generator, context[0], steps=2 * HORIZON, num_samples=4,
                        seed=2)
    # The same draws by hand: each block continues the last context_length
    # values, which are the context followed by the earlier blocks.
    rng = torch.Generator().manual_seed(2)
    history = context.repeat(4, 1)
    with torch.no_grad():
        for _ in range(2):
            noise = generator.sample_noise(4, "cpu", rng=rng)
            block = generator(history[:, -CONTEXT_LENGTH:], noise)
            history = torch.cat([history, block], dim=1)
    torch.testing.assert_close(paths, history[:, CONTEXT_LENGTH:])
    shifted = gh.roll_out(generator, context[0] + 3.0, steps=2 * HORIZON,
                          num_samples=4, seed=2)
    assert not torch.allclose(paths, shifted)


def test_roll_out_reproducible():
    generator, _ = make_networks()
    context, _ = make_batch(batch_size=1)
    first = gh.roll_out(generator, context[0], steps=5, num_samples=3, seed=1)
    second = gh.roll_out(generator, context[0], steps=5, num_samples=3, seed=1)
    assert torch.equal(first, second)


def test_sample_spread_positive_with_noise():
    generator, _ = make_networks()
    context, _ = make_batch(batch_size=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spread = gh.sample_spread(generator, context[0], num_samples=16)
    assert spread > 0
