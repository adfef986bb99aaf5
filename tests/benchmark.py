"""Measure the tutorial's training speed, time to accuracy and notebook run times.

Run it by hand from the repository root; pytest does not collect it, because
its name does not start with test_:

    python tests/benchmark.py                       # all four, median of 3 runs
    python tests/benchmark.py --quick --repeats 1   # smoke run of every part
    python tests/benchmark.py --write               # also rewrite BENCHMARKS.md

The four measurements:

1. throughput of one training step of the helpers (gh.discriminator_step and
   gh.generator_step), of a bare PyTorch loop doing the same work, and of
   gh.train_gan, on the toy series;
2. throughput of a common first attempt: two-layer LSTMs of 128 units in both
   networks, batch 64;
3. wall time of gh.train_gan at the settings of notebook 04 until the test
   metrics reach the accuracy targets, from a cold start for each epoch count;
4. execution time of each notebook, in memory, with every file it writes
   redirected to a temporary folder.

The script sets no environment variable that changes speed (it records
OMP_WAIT_POLICY as it finds it), and it fixes PyTorch's CPU thread count with
--threads, 2 by default like the notebooks.
"""

import argparse
import contextlib
import io
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
import gan_helpers as gh  # noqa: E402  (needs the repository root on sys.path)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BENCHMARKS_PATH = REPO_ROOT / "BENCHMARKS.md"

# The toy configuration of notebooks 01-05.
CONTEXT_LENGTH, HORIZON, BATCH_SIZE, LEARNING_RATE = 42, 10, 128, 1e-3
BETAS = (0.5, 0.999)  # as in gh.train_gan

# The first attempt of measurement 2, and the numbers reported for it on a
# 2-core CPU (a user's report, not measured with this script).
FIRST_ATTEMPT_BATCH_SIZE = 64
FIRST_ATTEMPT_HIDDEN_SIZE = 128
FIRST_ATTEMPT_NOISE_SIZE = 10
REFERENCE_WINDOWS_PER_SECOND = 640
REFERENCE_SECONDS_PER_EPOCH = 31
REFERENCE_MINUTES_PER_100_EPOCHS = 52

# Accuracy targets of measurement 3, on the test split of the toy series.
TARGET_EPOCHS = (10, 15, 20)
TARGET_TRAINING_SECONDS = 60
ORACLE_NOISE_STD = 0.1  # the noise of gh.make_toy_series
MAX_CRPS_RATIO = 1.25
MAX_MAE_RATIO = 1.2
COVERAGE_90_RANGE = (0.85, 0.95)
COVERAGE_50_RANGE = (0.40, 0.60)
EVALUATION_STRIDE = 10  # evaluate every 10th test window
EVALUATION_SAMPLES = 200

# Time budget of the notebooks (measurement 4).
MAX_NOTEBOOK_SECONDS = 120
MAX_SERIES_SECONDS = 300

MAX_HELPER_OVERHEAD = 0.10


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Measure training speed, time to accuracy and notebook "
        "run times of the GAN tutorial."
    )
    parser.add_argument(
        "--repeats", type=int, default=3,
        help="runs of each timing; the report gives their median (default 3)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: fewer steps, a 2-epoch accuracy run, only notebook 01",
    )
    parser.add_argument(
        "--device", default=None,
        help="'cpu', 'cuda' or 'cuda:N' (default: CUDA when available); the "
        "notebooks get it through GAN_TUTORIAL_DEVICE",
    )
    parser.add_argument(
        "--threads", type=int, default=2,
        help="PyTorch CPU threads for measurements 1-3 (default 2, as in the "
        "notebooks, which always use 2)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=["step", "first-attempt", "target", "notebooks"],
        help="run only these measurements (default: all four)",
    )
    parser.add_argument(
        "--notebooks", nargs="+", metavar="PREFIX",
        help="time only the notebooks whose names start with these prefixes, "
        "for example 04 05",
    )
    parser.add_argument(
        "--write", action="store_true",
        help=f"write the report to {BENCHMARKS_PATH.name} in the repository root",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {arguments.repeats}")
    if arguments.threads < 1:
        parser.error(f"--threads must be at least 1, got {arguments.threads}")
    return arguments


# ---------------------------------------------------------------------------
# Timing and formatting
# ---------------------------------------------------------------------------


def synchronize(device):
    # CUDA kernels run asynchronously, so a timer must wait for them.
    # NOTE: the CUDA path of this script has not been run yet; only the CPU has.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device):
    """Call `function()`; return its wall time in seconds and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def median_and_range(values, digits=0):
    """Format the median of `values`, with their range when there are several."""
    text = f"{statistics.median(values):,.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})"
    return text


def count_runs(repeats):
    return "1 run" if repeats == 1 else f"{repeats} runs"


def runs_phrase(repeats):
    if repeats == 1:
        return "One run"
    return f"Median of {repeats} runs, range in brackets"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def yes_no(condition):
    return "yes" if condition else "no"


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


class ToyData:
    """The toy series, split 70/15/15 by time, scaled on train and windowed."""

    def __init__(self, device):
        frame = gh.make_toy_series()
        series = gh.load_series(frame, column="value", time_column="t")
        train, validation, test = gh.split_by_time(
            series, context_length=CONTEXT_LENGTH, horizon=HORIZON
        )
        self.scaler = gh.StandardScaler().fit(train)
        self.train_contexts, self.train_futures = gh.make_windows(
            self.scaler.transform(train), CONTEXT_LENGTH, HORIZON, device
        )
        self.validation_contexts, _ = gh.make_windows(
            self.scaler.transform(validation), CONTEXT_LENGTH, HORIZON, device
        )
        self.test_contexts, _ = gh.make_windows(
            self.scaler.transform(test), CONTEXT_LENGTH, HORIZON, device
        )
        # The targets in original units and float64, with their times, for the
        # comparison with the oracle Normal(sin(t), 0.1).
        window = CONTEXT_LENGTH + HORIZON
        values = np.lib.stride_tricks.sliding_window_view(test.to_numpy(), window)
        times = np.lib.stride_tricks.sliding_window_view(test.index.to_numpy(), window)
        self.test_truth = values[:, CONTEXT_LENGTH:]
        self.test_times = times[:, CONTEXT_LENGTH:]


# ---------------------------------------------------------------------------
# Measurement 1: the helpers' training step against a bare PyTorch loop
# ---------------------------------------------------------------------------


def make_toy_networks(seed, device):
    torch.manual_seed(seed)
    generator = gh.Generator(CONTEXT_LENGTH, HORIZON).to(device)
    discriminator = gh.Discriminator(CONTEXT_LENGTH, HORIZON).to(device)
    return generator, discriminator


def make_optimizers(generator, discriminator):
    # The same optimizers as gh.train_gan builds.
    d_optimizer = torch.optim.Adam(
        discriminator.parameters(), LEARNING_RATE, betas=BETAS, foreach=True
    )
    g_optimizer = torch.optim.Adam(
        generator.parameters(), LEARNING_RATE, betas=BETAS, foreach=True
    )
    return d_optimizer, g_optimizer


def shuffled_batches(num_windows, num_batches, batch_size, device):
    # As in gh.train_gan: shuffle on the device, drop the last partial batch.
    order = torch.randperm(num_windows, device=device)
    return order[: num_batches * batch_size].split(batch_size)


def helper_epoch(networks, optimizers, contexts, futures, num_batches):
    """Train `num_batches` steps with gh.discriminator_step and gh.generator_step."""
    generator, discriminator = networks
    d_optimizer, g_optimizer = optimizers
    for batch in shuffled_batches(len(contexts), num_batches, BATCH_SIZE,
                                  contexts.device):
        context, real_batch = contexts[batch], futures[batch]
        gh.discriminator_step(discriminator, generator, d_optimizer, context,
                              real_batch)
        gh.generator_step(discriminator, generator, g_optimizer, context, real_batch)


def gradient_norm(parameters):
    return torch.stack([p.grad.norm() for p in parameters]).norm()


def bare_epoch(networks, optimizers, contexts, futures, num_batches,
               with_statistics=True):
    """Train `num_batches` steps with the helpers' computation written out.

    With `with_statistics`, each step also computes what the helpers return: both
    gradient norms, the losses and the mean discriminator outputs, each read
    with .item(). Without it, the step does only the forward and backward
    passes and the two optimizer steps.
    """
    generator, discriminator = networks
    d_optimizer, g_optimizer = optimizers
    d_parameters = list(discriminator.parameters())
    g_parameters = list(generator.parameters())
    bce = nn.functional.binary_cross_entropy_with_logits
    crps_weight = 10.0  # the default of gh.generator_step
    device = contexts.device
    for batch in shuffled_batches(len(contexts), num_batches, BATCH_SIZE, device):
        context, real_batch = contexts[batch], futures[batch]

        # Discriminator: real windows score 1, a detached fake batch scores 0.
        d_optimizer.zero_grad()
        real_logits = discriminator(context, real_batch)
        real_loss = bce(real_logits, torch.ones_like(real_logits))
        real_loss.backward()
        noise = torch.randn(len(context), generator.noise_size, device=device)
        fake_batch = generator(context, noise).detach()
        fake_logits = discriminator(context, fake_batch)
        fake_loss = bce(fake_logits, torch.zeros_like(fake_logits))
        fake_loss.backward()
        if with_statistics:
            gradient_norm(d_parameters).item()
        d_optimizer.step()
        if with_statistics:
            (real_loss + fake_loss).item()
            torch.sigmoid(real_logits).mean().item()
            torch.sigmoid(fake_logits).mean().item()

        # Generator: two samples per window, non-saturating loss plus the
        # two-sample CRPS estimate E|X - y| - E|X - X'| / 2.
        g_optimizer.zero_grad()
        noise = torch.randn(len(context), 2, generator.noise_size, device=device)
        fake_samples = generator(context, noise)
        first_sample, second_sample = fake_samples[:, 0], fake_samples[:, 1]
        fake_logits = discriminator(context, first_sample)
        adversarial_loss = bce(fake_logits, torch.ones_like(fake_logits))
        error = ((first_sample - real_batch).abs().mean()
                 + (second_sample - real_batch).abs().mean())
        spread = (first_sample - second_sample).abs().mean()
        total_loss = adversarial_loss + crps_weight * (error / 2 - spread / 2)
        total_loss.backward()
        if with_statistics:
            gradient_norm(g_parameters).item()
        g_optimizer.step()
        if with_statistics:
            adversarial_loss.item()
            torch.sigmoid(fake_logits).mean().item()


def train_gan_epoch(networks, contexts, futures):
    """Run gh.train_gan for one epoch over `contexts`, without the progress bar."""
    generator, discriminator = networks
    with warnings.catch_warnings():
        # Symptom warnings are irrelevant to speed, and the quick run has
        # fewer steps than log_every, which warns too.
        warnings.simplefilter("ignore", gh.TrainingWarning)
        gh.train_gan(generator, discriminator, contexts, futures, epochs=1,
                     batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
                     progress=False)


def rotated(items, shift):
    shift %= len(items)
    return items[shift:] + items[:shift]


def measure_step(data, device, arguments):
    """Time the helpers' step, the bare loops and gh.train_gan; return markdown."""
    warm_up_batches = 10
    # The three step loops run in short chunks in turn, with the order rotated
    # each chunk, so that load from other processes hits them alike.
    chunk_batches = 10 if arguments.quick else 12
    num_chunks = 3 if arguments.quick else len(data.train_contexts) // BATCH_SIZE // 12
    epoch_batches = num_chunks * chunk_batches
    chunk_windows = chunk_batches * BATCH_SIZE
    epoch_windows = epoch_batches * BATCH_SIZE
    contexts = data.train_contexts[:epoch_windows]
    futures = data.train_futures[:epoch_windows]
    print(f"\n1. training step: {epoch_batches} steps of {BATCH_SIZE} windows per "
          f"loop and run, {count_runs(arguments.repeats)}", flush=True)

    loops = {
        "helpers": lambda n, o, b: helper_epoch(n, o, contexts, futures, b),
        "bare": lambda n, o, b: bare_epoch(n, o, contexts, futures, b),
        "bare_minimal": lambda n, o, b: bare_epoch(n, o, contexts, futures, b,
                                                   with_statistics=False),
    }
    rates = {name: [] for name in [*loops, "train_gan", "bare_epoch"]}
    for repeat in range(arguments.repeats):
        # The same initial weights for every loop of one run.
        states = {}
        for name, run_steps in loops.items():
            networks = make_toy_networks(repeat, device)
            optimizers = make_optimizers(*networks)
            run_steps(networks, optimizers, warm_up_batches)
            states[name] = (networks, optimizers)
        seconds = dict.fromkeys(loops, 0.0)
        for chunk in range(num_chunks):
            for name in rotated(list(loops), chunk + repeat):
                networks, optimizers = states[name]
                elapsed, _ = timed(
                    lambda: loops[name](networks, optimizers, chunk_batches), device
                )
                seconds[name] += elapsed
        for name in loops:
            rates[name].append(num_chunks * chunk_windows / seconds[name])

        # gh.train_gan runs whole epochs and builds its own optimizers, so it
        # is compared with a whole epoch of the bare loop run beside it. Each
        # warms up first: train_gan with a short call on the first windows.
        train_gan_networks = make_toy_networks(repeat, device)
        warm_up_windows = warm_up_batches * BATCH_SIZE
        train_gan_epoch(train_gan_networks, contexts[:warm_up_windows],
                        futures[:warm_up_windows])
        bare_networks = make_toy_networks(repeat, device)
        bare_optimizers = make_optimizers(*bare_networks)
        bare_epoch(bare_networks, bare_optimizers, contexts, futures,
                   warm_up_batches)
        whole_epochs = {
            "train_gan": lambda: train_gan_epoch(train_gan_networks, contexts,
                                                 futures),
            "bare_epoch": lambda: bare_epoch(bare_networks, bare_optimizers,
                                             contexts, futures, epoch_batches),
        }
        for name in rotated(list(whole_epochs), repeat):
            elapsed, _ = timed(whole_epochs[name], device)
            rates[name].append(epoch_windows / elapsed)
        print(f"  run {repeat + 1}: " + ", ".join(
            f"{name} {values[-1]:,.0f}" for name, values in rates.items()
        ) + " windows/s", flush=True)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    helper_overhead = medians["bare"] / medians["helpers"] - 1
    train_gan_overhead = medians["bare_epoch"] / medians["train_gan"] - 1
    rows = []
    for name, label, baseline in [
        ("helpers", "gh.discriminator_step + gh.generator_step", "bare"),
        ("bare", "bare PyTorch loop, same statistics", "bare"),
        ("bare_minimal", "bare PyTorch loop, no gradient norms or .item()", "bare"),
        ("train_gan", "gh.train_gan, one epoch, progress=False", "bare_epoch"),
        ("bare_epoch", "bare PyTorch loop, same statistics, one epoch",
         "bare_epoch"),
    ]:
        ratio = medians[name] / medians[baseline]
        rows.append([label, median_and_range(rates[name]), f"{ratio:.2f}"])
    table = markdown_table(["loop", "windows/s", "relative to its bare loop"], rows)
    summary = (
        f"Helper overhead over the bare loop: {helper_overhead:+.1%} (target: "
        f"at most {MAX_HELPER_OVERHEAD:.0%}, met: "
        f"{yes_no(helper_overhead <= MAX_HELPER_OVERHEAD)}). Overhead of "
        f"gh.train_gan over a bare epoch: {train_gan_overhead:+.1%}."
    )
    text = "\n\n".join([
        f"Context {CONTEXT_LENGTH}, horizon {HORIZON}, batch {BATCH_SIZE}, the "
        f"default network sizes, Adam with betas {BETAS}, as in gh.train_gan. "
        "The bare loop writes out what the helpers compute: the same losses, "
        "the two-sample CRPS term, both gradient norms and the statistics the "
        "helpers return, read with .item(). The first three loops run "
        f"{epoch_batches} steps each per run, in {num_chunks} chunks of "
        f"{chunk_batches} steps taken in turn, after {warm_up_batches} warm-up "
        "steps each. gh.train_gan adds a NaN check and two learning-rate "
        "scheduler steps per step, and a log record "
        "with the sample spread every 100 steps; it runs one epoch of "
        f"{epoch_batches} steps, compared with an epoch of the bare loop run "
        f"beside it. {runs_phrase(arguments.repeats)}.",
        table,
        summary,
    ])
    print(table + "\n" + summary, flush=True)
    return text


# ---------------------------------------------------------------------------
# Measurement 2: a common first attempt, LSTMs of 2 layers of 128 units
# ---------------------------------------------------------------------------


class FirstAttemptGenerator(nn.Module):
    """A 2-layer LSTM over the context, then a linear head on [hidden, noise]."""

    def __init__(self, horizon, hidden_size, noise_size):
        super().__init__()
        self.noise_size = noise_size
        self.lstm = nn.LSTM(1, hidden_size, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden_size + noise_size, horizon)

    def forward(self, context, noise):
        _, (hidden, _) = self.lstm(context.unsqueeze(-1))
        return self.head(torch.cat([hidden[-1], noise], dim=1))


class FirstAttemptDiscriminator(nn.Module):
    """A 2-layer LSTM over context and continuation, then a logit."""

    def __init__(self, hidden_size):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, context, continuation):
        sequence = torch.cat([context, continuation], dim=1).unsqueeze(-1)
        _, (hidden, _) = self.lstm(sequence)
        return self.head(hidden[-1])


def first_attempt_steps(networks, optimizers, contexts, futures, num_batches):
    """Train with plain BCE: a real and a detached fake batch, then one for G."""
    generator, discriminator = networks
    d_optimizer, g_optimizer = optimizers
    bce = nn.functional.binary_cross_entropy_with_logits
    device = contexts.device
    batches = shuffled_batches(len(contexts), num_batches,
                               FIRST_ATTEMPT_BATCH_SIZE, device)
    for batch in batches:
        context, real_batch = contexts[batch], futures[batch]
        d_optimizer.zero_grad()
        real_logits = discriminator(context, real_batch)
        noise = torch.randn(len(context), generator.noise_size, device=device)
        fake_logits = discriminator(context, generator(context, noise).detach())
        d_loss = (bce(real_logits, torch.ones_like(real_logits))
                  + bce(fake_logits, torch.zeros_like(fake_logits)))
        d_loss.backward()
        d_optimizer.step()

        g_optimizer.zero_grad()
        noise = torch.randn(len(context), generator.noise_size, device=device)
        fake_logits = discriminator(context, generator(context, noise))
        g_loss = bce(fake_logits, torch.ones_like(fake_logits))
        g_loss.backward()
        g_optimizer.step()
        # A first attempt usually logs both losses every step.
        d_loss.item()
        g_loss.item()


def measure_first_attempt(data, device, arguments):
    num_batches = 10 if arguments.quick else 100
    warm_up_batches = 3
    num_windows = num_batches * FIRST_ATTEMPT_BATCH_SIZE
    contexts, futures = data.train_contexts, data.train_futures
    epoch_windows = len(contexts) // FIRST_ATTEMPT_BATCH_SIZE * FIRST_ATTEMPT_BATCH_SIZE
    print(f"\n2. first attempt: {num_batches} steps of {FIRST_ATTEMPT_BATCH_SIZE} "
          f"windows per run, {count_runs(arguments.repeats)}", flush=True)
    rates = []
    for repeat in range(arguments.repeats):
        torch.manual_seed(repeat)
        generator = FirstAttemptGenerator(
            HORIZON, FIRST_ATTEMPT_HIDDEN_SIZE, FIRST_ATTEMPT_NOISE_SIZE
        ).to(device)
        discriminator = FirstAttemptDiscriminator(FIRST_ATTEMPT_HIDDEN_SIZE).to(device)
        networks = (generator, discriminator)
        optimizers = make_optimizers(generator, discriminator)
        first_attempt_steps(networks, optimizers, contexts, futures, warm_up_batches)
        seconds, _ = timed(lambda: first_attempt_steps(
            networks, optimizers, contexts, futures, num_batches), device)
        rates.append(num_windows / seconds)
        print(f"  run {repeat + 1}: {rates[-1]:,.0f} windows/s", flush=True)

    rate = statistics.median(rates)
    seconds_per_epoch = epoch_windows / rate
    rows = [
        ["windows/s", median_and_range(rates), f"{REFERENCE_WINDOWS_PER_SECOND:,}"],
        [f"seconds per epoch ({epoch_windows:,} windows)",
         f"{seconds_per_epoch:.1f}", REFERENCE_SECONDS_PER_EPOCH],
        ["minutes for 100 epochs (projected)", f"{100 * seconds_per_epoch / 60:.1f}",
         REFERENCE_MINUTES_PER_100_EPOCHS],
    ]
    table = markdown_table(["", "measured", "reported, 2-core CPU"], rows)
    # 640 windows/s for 31 s is about 19,800 windows an epoch, which matches
    # the windows of all 20,000 points rather than of the 70% training split.
    implied_windows = REFERENCE_WINDOWS_PER_SECOND * REFERENCE_SECONDS_PER_EPOCH
    text = "\n\n".join([
        f"Generator: nn.LSTM(1, {FIRST_ATTEMPT_HIDDEN_SIZE}, num_layers=2) and "
        f"a linear head on [last hidden state, {FIRST_ATTEMPT_NOISE_SIZE} noise "
        f"values]. Discriminator: nn.LSTM(1, {FIRST_ATTEMPT_HIDDEN_SIZE}, "
        "num_layers=2) over context and continuation, and a linear logit. "
        f"Plain BCE with logits, no CRPS term, Adam with learning rate "
        f"{LEARNING_RATE} and betas {BETAS}, batch {FIRST_ATTEMPT_BATCH_SIZE}, "
        f"context {CONTEXT_LENGTH}, horizon {HORIZON}, the toy series of 20,000 "
        f"points split 70/15/15. {num_batches} steps per run after "
        f"{warm_up_batches} warm-up steps. {runs_phrase(arguments.repeats)}. "
        "The reported numbers come from a user's run, not from this script.",
        table,
        f"The reported 640 windows/s and 31 s an epoch imply about "
        f"{implied_windows:,} windows an epoch, the windows of all 20,000 "
        f"points; the 70% training split has {len(contexts):,}.",
    ])
    print(table, flush=True)
    return text


# ---------------------------------------------------------------------------
# Measurement 3: training time until the test metrics reach the targets
# ---------------------------------------------------------------------------


def evaluate_on_test(generator, data):
    """Return the test metrics of the GAN and of the oracle Normal(sin(t), 0.1)."""
    contexts = data.test_contexts[::EVALUATION_STRIDE]
    truth = data.test_truth[::EVALUATION_STRIDE]
    clean = np.sin(data.test_times[::EVALUATION_STRIDE])
    samples = gh.sample_forecasts(generator, contexts, num_samples=EVALUATION_SAMPLES)
    samples = data.scaler.inverse_transform(samples.cpu().numpy().astype("float64"))
    return {
        "crps": gh.crps_from_samples(samples, truth),
        "oracle_crps": gh.crps_gaussian(clean, ORACLE_NOISE_STD, truth),
        "coverage_90": gh.interval_coverage(samples, truth, 0.9),
        "coverage_50": gh.interval_coverage(samples, truth, 0.5),
        "mae": gh.mae(np.median(samples, axis=1), truth),
        "oracle_mae": gh.mae(clean, truth),
    }


def check_targets(metrics):
    """Return the targets that `metrics` misses, as short descriptions."""
    misses = []
    if metrics["crps"] > MAX_CRPS_RATIO * metrics["oracle_crps"]:
        misses.append("CRPS")
    if not COVERAGE_90_RANGE[0] <= metrics["coverage_90"] <= COVERAGE_90_RANGE[1]:
        misses.append("90% coverage")
    if not COVERAGE_50_RANGE[0] <= metrics["coverage_50"] <= COVERAGE_50_RANGE[1]:
        misses.append("50% coverage")
    if metrics["mae"] > MAX_MAE_RATIO * metrics["oracle_mae"]:
        misses.append("MAE")
    return misses


def train_from_cold_start(data, device, epochs):
    """Train as notebook 04 does for `epochs`; return the seconds and metrics."""
    # The lines that seed_everything and train_gan print are discarded, so that
    # the benchmark's output shows only its own lines.
    with contextlib.redirect_stdout(io.StringIO()):
        gh.seed_everything(0, num_threads=torch.get_num_threads())
        generator = gh.Generator(CONTEXT_LENGTH, HORIZON).to(device)
        discriminator = gh.Discriminator(CONTEXT_LENGTH, HORIZON).to(device)
        seconds, _ = timed(lambda: gh.train_gan(
            generator, discriminator, data.train_contexts, data.train_futures,
            epochs=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE,
            log_every=100, print_every=500,
            monitor_context=data.validation_contexts[0], progress=False,
        ), device)
    return seconds, evaluate_on_test(generator, data)


def measure_time_to_target(data, device, arguments):
    epoch_counts = (2,) if arguments.quick else TARGET_EPOCHS
    print(f"\n3. time to target: epochs {list(epoch_counts)}, each from a cold "
          "start", flush=True)
    results = {}
    for epochs in epoch_counts:
        seconds, metrics = train_from_cold_start(data, device, epochs)
        results[epochs] = ([seconds], metrics)
        misses = check_targets(metrics)
        print(f"  {epochs} epochs: {seconds:.1f} s, CRPS {metrics['crps']:.4f} "
              f"(oracle {metrics['oracle_crps']:.4f}), coverage "
              f"{metrics['coverage_90']:.3f}/{metrics['coverage_50']:.3f}, MAE "
              f"{metrics['mae']:.4f} (oracle {metrics['oracle_mae']:.4f}), "
              f"misses: {', '.join(misses) or 'none'}", flush=True)

    first_met = next((e for e in epoch_counts if not check_targets(results[e][1])),
                     None)
    if first_met is not None:
        # Training is seeded, so further runs repeat the metrics and only the
        # time varies. Only the first epoch count that meets them is re-timed.
        for repeat in range(1, arguments.repeats):
            seconds, metrics = train_from_cold_start(data, device, first_met)
            if metrics != results[first_met][1]:
                print(f"  NOTE: run {repeat + 1} of {first_met} epochs gave "
                      "different metrics", flush=True)
            results[first_met][0].append(seconds)
            print(f"  {first_met} epochs, run {repeat + 1}: {seconds:.1f} s",
                  flush=True)

    rows = []
    for epochs, (seconds, metrics) in results.items():
        rows.append([
            epochs, median_and_range(seconds, 1),
            f"{metrics['crps']:.4f} ({metrics['crps'] / metrics['oracle_crps']:.2f}x)",
            f"{metrics['coverage_90']:.3f}", f"{metrics['coverage_50']:.3f}",
            f"{metrics['mae']:.4f} ({metrics['mae'] / metrics['oracle_mae']:.2f}x)",
            ", ".join(check_targets(metrics)) or "none",
        ])
    table = markdown_table(
        ["epochs", "training s", "CRPS (x oracle)", "90% coverage", "50% coverage",
         "median MAE (x oracle)", "targets missed"], rows,
    )
    any_metrics = next(iter(results.values()))[1]
    if first_met is None:
        summary = (f"No epoch count in {list(epoch_counts)} met all targets "
                   f"(training-time target: under {TARGET_TRAINING_SECONDS} s).")
    else:
        met_seconds = statistics.median(results[first_met][0])
        summary = (
            f"First epoch count that meets all targets: {first_met}, in "
            f"{met_seconds:.1f} s of training (target: under "
            f"{TARGET_TRAINING_SECONDS} s, met: "
            f"{yes_no(met_seconds < TARGET_TRAINING_SECONDS)})."
        )
    if arguments.repeats == 1:
        timing = "Each epoch count is trained once"
    else:
        timing = (f"The first epoch count that meets them is trained "
                  f"{arguments.repeats} times, and its time is the median, with "
                  "the range in brackets; the others are trained once")
    num_windows = len(data.test_truth[::EVALUATION_STRIDE])
    text = "\n\n".join([
        f"gh.train_gan at the settings of notebook 04 (seed 0 through "
        f"gh.seed_everything, batch {BATCH_SIZE}, learning rate {LEARNING_RATE} "
        "falling linearly to 5% over each run, CRPS weight 10, the default "
        "networks, monitor context the first validation window), "
        "each epoch count from a cold start, because train_gan would reset "
        "the optimizers if it were called again. Evaluated on every "
        f"{EVALUATION_STRIDE}th test window ({num_windows} windows) with "
        f"{EVALUATION_SAMPLES} samples each, in original units. "
        f"The oracle is Normal(sin(t), {ORACLE_NOISE_STD}), the law the toy "
        f"series is drawn from: its CRPS is {any_metrics['oracle_crps']:.4f} and "
        f"the MAE of its median sin(t) is {any_metrics['oracle_mae']:.4f}. "
        f"Targets: CRPS at most {MAX_CRPS_RATIO}x the oracle's, 90% coverage in "
        f"[{COVERAGE_90_RANGE[0]}, {COVERAGE_90_RANGE[1]}], 50% coverage in "
        f"[{COVERAGE_50_RANGE[0]}, {COVERAGE_50_RANGE[1]}], median MAE at most "
        f"{MAX_MAE_RATIO}x the oracle's. {timing}. Training time excludes "
        "the evaluation.",
        table,
        summary,
    ])
    print(table + "\n" + summary, flush=True)
    return text


# ---------------------------------------------------------------------------
# Measurement 4: notebook execution times
# ---------------------------------------------------------------------------


def execute_notebook_in_memory(path):
    """Execute one notebook without writing it; return seconds and any error."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    if str(NOTEBOOK_DIR) not in sys.path:
        sys.path.insert(0, str(NOTEBOOK_DIR))
    from run_all import make_client  # the runner's settings, without the write

    notebook = nbformat.read(path, as_version=4)
    client = make_client(notebook)
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as failure:
        error = str(failure).strip().splitlines()[-1]
    return time.perf_counter() - start, error


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables (None leaves one as it is); restore them after."""
    previous = {name: os.environ.get(name) for name in variables}
    for name, value in variables.items():
        if value is not None:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure_notebooks(arguments):
    paths = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    prefixes = arguments.notebooks or (["01"] if arguments.quick else None)
    if prefixes:
        paths = [path for path in paths if path.name.startswith(tuple(prefixes))]
    if not paths:
        raise SystemExit(f"no notebook in {NOTEBOOK_DIR} starts with {prefixes}: "
                         "check the --notebooks prefixes")
    print(f"\n4. notebooks: {len(paths)}, {count_runs(arguments.repeats)}", flush=True)
    seconds = {path.name: [] for path in paths}
    errors = {}
    for repeat in range(arguments.repeats):
        # A fresh output folder per run, so no run reads what another wrote.
        with tempfile.TemporaryDirectory(prefix="gan-benchmark-outputs-") as folder, \
                environment(**{gh.OUTPUT_DIR_VARIABLE: folder,
                               "GAN_TUTORIAL_DEVICE": arguments.device}):
            for path in paths:
                elapsed, error = execute_notebook_in_memory(path)
                seconds[path.name].append(elapsed)
                if error:
                    errors[path.name] = error
                print(f"  run {repeat + 1}: {path.name:32s} {elapsed:6.1f} s"
                      + (f"  FAILED: {error}" if error else ""), flush=True)

    rows = []
    for name, values in seconds.items():
        median = statistics.median(values)
        rows.append([name, median_and_range(values, 1),
                     yes_no(median <= MAX_NOTEBOOK_SECONDS and name not in errors)])
    totals = [sum(run) for run in zip(*seconds.values())]
    total = statistics.median(totals)
    rows.append(["total", median_and_range(totals, 1),
                 yes_no(total <= MAX_SERIES_SECONDS and not errors)])
    table = markdown_table(["notebook", "seconds", "within budget"], rows)
    parts = [
        "Each notebook executed with nbclient in a fresh python3 kernel, with "
        "the client settings of notebooks/run_all.py, but kept in memory, and "
        f"with {gh.OUTPUT_DIR_VARIABLE} pointing at a temporary folder, so the "
        "repository is left unchanged. Times include the kernel start. "
        f"{runs_phrase(arguments.repeats)}. Budget: at most "
        f"{MAX_NOTEBOOK_SECONDS} s a notebook and {MAX_SERIES_SECONDS} s for "
        "the whole series (of 8 notebooks when the series is complete).",
        table,
    ]
    if errors:
        parts.append("Failed: " + "; ".join(f"{name}: {error}"
                                            for name, error in errors.items()))
    print(table, flush=True)
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine(device, command, started, load_before):
    import nbclient
    import pandas

    if device.type == "cuda":
        gpu = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    elif torch.cuda.is_available():
        gpu = f"{torch.cuda.get_device_name(0)} available, but CUDA: not run"
    else:
        gpu = "none available (torch.cuda.is_available() is False), so CUDA: not run"
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable_cores = os.cpu_count()
    load_after = os.getloadavg()
    rows = [
        ["date", started.strftime("%Y-%m-%d %H:%M %Z")],
        ["command", f"`{command}`"],
        ["CPU", cpu_model()],
        ["CPU cores", f"{os.cpu_count()} ({usable_cores} usable by this process)"],
        ["load average, 1 min, at start and end",
         f"{load_before[0]:.2f}, {load_after[0]:.2f}"],
        ["device", str(device)],
        ["GPU", gpu],
        ["PyTorch CPU threads", torch.get_num_threads()],
        ["OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "not set")],
        ["Python", platform.python_version()],
        ["torch", torch.__version__],
        ["numpy", np.__version__],
        ["pandas", pandas.__version__],
        ["nbclient", nbclient.__version__],
    ]
    return markdown_table(["", ""], rows)


def main(argv=None):
    arguments = parse_arguments(argv)
    started = datetime.now().astimezone()
    load_before = os.getloadavg()
    command = shlex.join(["python", "tests/benchmark.py", *sys.argv[1:]])
    torch.set_num_threads(arguments.threads)
    try:
        device = gh.choose_device(arguments.device)
    except (RuntimeError, ValueError) as error:
        raise SystemExit(
            f"invalid --device {arguments.device!r}: {error}. For this script, "
            "pass --device cpu instead"
        )
    only = set(arguments.only or ["step", "first-attempt", "target", "notebooks"])

    sections = []
    data = ToyData(device) if only - {"notebooks"} else None
    if "step" in only:
        sections.append(("1. Training step throughput, toy configuration",
                         measure_step(data, device, arguments)))
    if "first-attempt" in only:
        sections.append(("2. Throughput of a first attempt: LSTMs of 2 x 128 units",
                         measure_first_attempt(data, device, arguments)))
    if "target" in only:
        sections.append(("3. Training time to the accuracy targets",
                         measure_time_to_target(data, device, arguments)))
    if "notebooks" in only:
        sections.append(("4. Notebook execution times", measure_notebooks(arguments)))

    mode = ("a quick smoke run (--quick): fewer steps, 2 epochs in measurement "
            "3, notebook 01 only; its numbers are not comparable with a full "
            "run" if arguments.quick else "a full run")
    page = [
        "# Benchmarks",
        "Written by `python tests/benchmark.py --write`; edit that script, not "
        f"this page. This page records {mode}. The numbers depend on the "
        "machine and on its load: the load average below shows whether other "
        "work was running.",
        "## Machine",
        describe_machine(device, command, started, load_before),
    ]
    for title, text in sections:
        page += [f"## {title}", text]
    report = "\n\n".join(page) + "\n"
    print("\n" + report)
    if arguments.write:
        BENCHMARKS_PATH.write_text(report, encoding="utf-8")
        print(f"wrote {BENCHMARKS_PATH}")


if __name__ == "__main__":
    main()
