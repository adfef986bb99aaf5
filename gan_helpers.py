"""Shared helpers for the notebooks on GANs for time-series forecasting.

The notebooks introduce each piece before they import it from here: data
preparation in 01, the discriminator in 02, the generator in 03, the training
loop in 04, sampling and metrics in 05 and 07, the diagnostics in 08.

Simplifications, on purpose: one univariate series at a time, windows cut with
stride 1, a single LSTM layer in the generator, and a plain MLP discriminator.
Importing this module has no side effects: nothing is seeded, no device is
chosen and no plot style is set until a notebook calls a function.
"""

import json
import math
import os
import random
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent

# Environment variable that redirects every file the notebooks write (data,
# checkpoints, figures) to another folder. The tests set it, so running them
# leaves the repository unchanged.
OUTPUT_DIR_VARIABLE = "GAN_TUTORIAL_OUTPUT_DIR"

# Environment variable that sets the device of choose_device() when it is
# called without an argument: "cpu", "cuda" or "cuda:N".
DEVICE_VARIABLE = "GAN_TUTORIAL_DEVICE"


# ---------------------------------------------------------------------------
# Device, seeding, files
# ---------------------------------------------------------------------------


def choose_device(requested=None):
    """Return the device to train on (CUDA when available, else the CPU)."""
    source = "requested"
    if requested is None:
        # An empty variable counts as unset, as in most shell conventions.
        requested = os.environ.get(DEVICE_VARIABLE) or None
        source = f"set in {DEVICE_VARIABLE}"
    if requested is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = _check_device(requested, source)
    print(f"device: {device}")
    return device


def _check_device(requested, source="requested"):
    """Parse `requested` into a torch.device that this machine can use."""
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"invalid device {requested!r} ({source}): use 'cpu', 'cuda' "
            "or 'cuda:N'"
        ) from error
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"unsupported device {requested!r} ({source}): the tutorial runs "
            "on 'cpu', 'cuda' or 'cuda:N'"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        fix = ("pass device='cpu'" if source == "requested"
               else f"unset {DEVICE_VARIABLE} or set it to 'cpu'")
        raise RuntimeError(
            f"device {requested!r} was {source} but CUDA is not available "
            f"on this machine: {fix}"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(
            f"device {requested!r} was {source} but this machine has "
            f"{torch.cuda.device_count()} CUDA devices: use 'cuda:0' up to "
            f"'cuda:{torch.cuda.device_count() - 1}'"
        )
    return device


def seed_everything(seed, num_threads=2):
    """Seed Python, NumPy and PyTorch, and fix PyTorch's CPU thread count."""
    # A different thread count changes LSTM results in the 6th decimal, so the
    # notebooks fix it to keep their stored outputs reproducible.
    torch.set_num_threads(num_threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    print(f"seed: {seed}, CPU threads: {num_threads}")


def output_path(relative_path):
    """Return where a notebook writes `relative_path`, creating its folder."""
    base = os.environ.get(OUTPUT_DIR_VARIABLE)
    path = (Path(base) if base else REPO_ROOT) / relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_file_keeping_previous(write, path):
    """Write a file through `write(path)`; keep a different old one beside it.

    A notebook re-run must not replace a committed data file or checkpoint
    silently, so an existing file whose bytes differ from the new one is
    renamed to `<name>.previous<suffix>` and a message is printed.
    """
    path = Path(path)
    if not path.exists():
        write(path)
        return path
    # The new file gets the same name in a scratch folder, because torch.save
    # records the file name inside the archive.
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        new_path = Path(scratch) / path.name
        write(new_path)
        if new_path.read_bytes() == path.read_bytes():
            return path
        previous_path = path.with_name(f"{path.stem}.previous{path.suffix}")
        path.replace(previous_path)
        new_path.replace(path)
    print(
        f"NOTE: {path.name} changed; the old version is kept as "
        f"{previous_path.name} (delete it once you have compared the two)"
    )
    return path


# ---------------------------------------------------------------------------
# Data: loading, splitting, scaling, windowing
# ---------------------------------------------------------------------------


def make_toy_series(num_points=20_000, step=0.1, noise_std=0.1, seed=0):
    """Return sin(t) plus Gaussian noise as a DataFrame with columns t, value."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_points) * step
    value = np.sin(t) + rng.normal(0.0, noise_std, size=num_points)
    return pd.DataFrame({"t": np.round(t, 6), "value": value})


def _read_table(source):
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, pd.Series):
        return source.to_frame(name=source.name or "value")
    if isinstance(source, (np.ndarray, list, tuple)):
        array = np.asarray(source)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(
                f"expected a 1-D array of values, got shape {array.shape}: "
                "pass one column, for example array[:, 0]"
            )
        return pd.DataFrame({"value": array})
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"expected a CSV path, a DataFrame, a Series or an array, got "
            f"{type(source).__name__}: pass the series in one of those forms"
        )
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"series file not found: {path} (check the path; the notebooks "
            "run from the notebooks/ folder, so data files are in ../data/)"
        )
    if path.stat().st_size == 0:
        raise ValueError(f"series file {path} is empty: it has no header and no rows")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:  # only blank lines
        raise ValueError(
            f"series file {path} is empty: it has no header and no rows"
        ) from error
    except UnicodeDecodeError as error:
        raise ValueError(
            f"series file {path} is not UTF-8 text ({error.reason} at byte "
            f"{error.start}): save it as UTF-8, or read it with pandas.read_csv "
            "and its encoding argument and pass the DataFrame"
        ) from error
    if frame.empty:
        raise ValueError(f"series file {path} has a header but no rows")
    if frame.shape[1] == 1:
        # In a one-column file an empty value is a blank line, which read_csv
        # drops by default. Read it again so that those rows count as
        # missing, but still ignore blank lines before the header and at the end.
        lines = path.read_text(encoding="utf-8").splitlines()
        leading = next(i for i, line in enumerate(lines) if line.strip())
        trailing = next(i for i, line in enumerate(reversed(lines)) if line.strip())
        frame = pd.read_csv(path, skiprows=leading, skip_blank_lines=False)
        frame = frame.iloc[:len(frame) - trailing]
    return frame


def _check_time_column(times, name, is_index=False):
    label = f"time index {name!r}" if is_index else f"time column {name!r}"
    skip_hint = ("drop the index with reset_index(drop=True) to skip" if is_index
                 else "leave out time_column to skip")
    if not pd.api.types.is_numeric_dtype(times):
        try:
            times = pd.to_datetime(times, errors="coerce")
        except ValueError as error:  # pandas raises it for mixed time zones
            raise ValueError(
                f"{label} could not be read as dates ({error}): "
                "give every timestamp the same time zone, for example in UTC"
            ) from error
        if times.isna().any():
            row = int(np.flatnonzero(times.isna())[0])
            raise ValueError(
                f"{label} has a value that is not a date or number "
                f"at row {row}: fix or remove that row"
            )
    elif times.isna().any():
        row = int(np.flatnonzero(times.isna())[0])
        raise ValueError(
            f"{label} has {int(times.isna().sum())} missing "
            f"timestamps, the first at row {row}: fill or remove those rows"
        )
    duplicated = times.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise ValueError(
            f"{label} has {int(duplicated.sum())} duplicated "
            f"timestamps, the first at row {row} ({times.iloc[row]}): "
            "keep one row per timestamp"
        )
    steps = np.diff(times.to_numpy()).astype("float64")
    if (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ValueError(
            f"{label} is not sorted: row {row} ({times.iloc[row]}) "
            f"comes before row {row - 1} ({times.iloc[row - 1]}); sort the rows"
        )
    if len(steps) and not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        # Months, quarters, years and business days have steps of unequal
        # length but are regular calendar grids, which pandas can name.
        if _calendar_frequency(times) is not None:
            return times
        irregular = ~np.isclose(steps, steps[0], rtol=1e-6, atol=0)
        row = int(np.flatnonzero(irregular)[0]) + 1
        first_step = times.iloc[1] - times.iloc[0]
        step = times.iloc[row] - times.iloc[row - 1]
        raise ValueError(
            f"{label} is irregular: the step before row {row} is "
            f"{step}, but the first step is {first_step}; resample to a regular "
            f"grid and mark the new rows as missing, or {skip_hint} this check"
        )
    return times


def _calendar_frequency(times):
    if not pd.api.types.is_datetime64_any_dtype(times) or len(times) < 3:
        return None
    with warnings.catch_warnings():
        # pandas 3.1 warns that infer_freq will return an offset instead of a
        # string. Either is fine here, because only None matters.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return pd.infer_freq(pd.DatetimeIndex(times))
        except (TypeError, ValueError):
            return None


def load_series(source, column=None, time_column=None, missing="raise"):
    """Load one numeric series from a CSV path, DataFrame or array, validated.

    `missing` sets the policy for NaN or empty values: "raise" (the default)
    or "interpolate", which fills them linearly between their neighbours and
    prints how many values it filled. Returns a float64 pandas Series indexed
    by `time_column` when one is given.
    """
    if missing not in ("raise", "interpolate"):
        raise ValueError(f"invalid missing={missing!r}: use 'raise' or 'interpolate'")
    frame = _read_table(source)
    columns = list(frame.columns)
    if time_column is not None and time_column not in columns:
        raise KeyError(f"time column {time_column!r} not found; columns are {columns}")
    value_columns = [name for name in columns if name != time_column]
    if column is None:
        if len(value_columns) != 1:
            raise ValueError(
                f"expected one value column, found {value_columns}: pass "
                "column=NAME to choose one"
            )
        column = value_columns[0]
    elif column not in columns:
        raise KeyError(f"column {column!r} not found; columns are {columns}")

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    not_numeric = values.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if not_numeric.any():
        row = int(np.flatnonzero(not_numeric)[0])
        raise ValueError(
            f"column {column!r} has a non-numeric value {raw.iloc[row]!r} at row "
            f"{row}: fix the value or leave it empty to mark it as missing"
        )
    values = values.astype("float64")
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        rows = _first_rows(np.flatnonzero(infinite))
        raise ValueError(
            f"column {column!r} has {int(infinite.sum())} infinite values, at rows "
            f"{rows}: replace them with real values or leave them empty"
        )

    if time_column is not None:
        values.index = pd.Index(_check_time_column(frame[time_column], time_column))
        values.index.name = time_column
    elif isinstance(values.index, pd.DatetimeIndex):
        # A DataFrame or Series indexed by time gets the same checks.
        index_name = values.index.name or "index"
        _check_time_column(values.index.to_series(index=range(len(values))),
                           index_name, is_index=True)
    values.name = column

    missing_rows = np.flatnonzero(values.isna().to_numpy())
    if len(missing_rows) and missing == "raise":
        raise ValueError(
            f"column {column!r} has {len(missing_rows)} missing values, at rows "
            f"{_first_rows(missing_rows)}: pass missing='interpolate' to fill "
            "them linearly, or fill them yourself"
        )
    if len(values) and len(missing_rows) == len(values):
        raise ValueError(f"column {column!r} has no values: every row is missing")
    if len(missing_rows):
        values = values.interpolate(method="linear", limit_direction="both")
        print(f"interpolated {len(missing_rows)} missing values of {column!r}")
    if len(values) < 2:
        raise ValueError(f"series {column!r} has {len(values)} values; need at least 2")
    if values.nunique() == 1:
        raise ValueError(
            f"series {column!r} is constant ({values.iloc[0]}): a forecaster "
            "has nothing to learn from it"
        )
    return values


def _first_rows(rows, count=5):
    text = ", ".join(str(row) for row in rows[:count])
    return f"[{text}, ...]" if len(rows) > count else f"[{text}]"


def _check_length(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def split_by_time(series, validation_fraction=0.15, test_fraction=0.15,
                  context_length=1, horizon=1):
    """Split a series by time into train, validation and test parts, in order.

    Each part must hold at least one window of `context_length + horizon`
    values, so a window never needs to cross a boundary.
    """
    _check_length("context_length", context_length)
    _check_length("horizon", horizon)
    for name, fraction in [("validation_fraction", validation_fraction),
                           ("test_fraction", test_fraction)]:
        if isinstance(fraction, bool) or not isinstance(
                fraction, (int, float, np.floating)):
            raise TypeError(f"{name} must be a number between 0 and 1, got {fraction!r}")
        if not 0 < fraction < 1:
            raise ValueError(f"{name} must be between 0 and 1, got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"validation_fraction + test_fraction = "
            f"{validation_fraction + test_fraction} leaves no training data; "
            "keep their sum below 1"
        )
    if isinstance(series, pd.DataFrame):
        raise TypeError(
            f"expected one series, got a DataFrame with columns "
            f"{list(series.columns)}: load one column with gh.load_series"
        )
    series = series if isinstance(series, pd.Series) else pd.Series(series)
    num_values = len(series)
    num_test = int(round(num_values * test_fraction))
    num_validation = int(round(num_values * validation_fraction))
    num_train = num_values - num_validation - num_test
    window = context_length + horizon
    if min(num_train, num_validation, num_test) < window:
        needed = math.ceil(window / min(validation_fraction, test_fraction,
                                        1 - validation_fraction - test_fraction))
        raise ValueError(
            f"series too short: {num_values} values give parts of {num_train}, "
            f"{num_validation} and {num_test}, but each needs at least "
            f"context_length + horizon = {window}; about {needed} values are "
            "needed with these fractions"
        )
    train = series.iloc[:num_train]
    validation = series.iloc[num_train:num_train + num_validation]
    test = series.iloc[num_train + num_validation:]
    return train, validation, test


class StandardScaler:
    """Standard scaling, (x - mean) / std, fitted on the training part only."""

    def __init__(self, mean=None, std=None):
        self.mean = mean
        self.std = std

    def fit(self, values):
        """Store the mean and standard deviation of `values`; return self."""
        values = np.asarray(values, dtype="float64")
        if values.size == 0:
            raise ValueError("cannot fit the scaler: the training values are empty")
        if not np.isfinite(values).all():
            raise ValueError(
                f"cannot fit the scaler: {int((~np.isfinite(values)).sum())} "
                "training values are NaN or infinite; load the series with "
                "load_series, which rejects or fills them"
            )
        std = float(values.std())
        if not std > 0:
            raise ValueError(
                f"cannot fit the scaler: the training values are constant "
                f"({values.flat[0]}), so their standard deviation is zero; use a "
                "longer or different training period"
            )
        self.mean = float(values.mean())
        self.std = std
        return self

    def _check_fitted(self):
        if self.mean is None or self.std is None:
            raise RuntimeError("the scaler is not fitted: call fit(train) first")

    def transform(self, values):
        """Map values in original units to scaled units."""
        self._check_fitted()
        return (values - self.mean) / self.std

    def inverse_transform(self, values):
        """Map scaled values back to original units."""
        self._check_fitted()
        return values * self.std + self.mean

    def to_dict(self):
        """Return the fitted parameters as a JSON-ready dict."""
        self._check_fitted()
        return {"mean": self.mean, "std": self.std}


def make_windows(values, context_length, horizon, device=None):
    """Cut every (context, future) pair of one split, with stride 1.

    Returns two float32 tensors on `device`, of shapes
    (num_windows, context_length) and (num_windows, horizon). Call it once per
    split, so that no window crosses a split boundary.
    """
    _check_length("context_length", context_length)
    _check_length("horizon", horizon)
    values = np.asarray(values, dtype="float32")
    if values.ndim != 1:
        raise ValueError(
            f"expected one series (1-D values), got shape {values.shape}: this "
            "tutorial forecasts one feature at a time"
        )
    window = context_length + horizon
    if len(values) < window:
        raise ValueError(
            f"{len(values)} values are too few for one window of context_length "
            f"+ horizon = {window}; pass a longer split or shorter windows"
        )
    windows = np.lib.stride_tricks.sliding_window_view(values, window)
    if device is not None:
        device = _check_device(device)
    windows = torch.as_tensor(windows.copy(), device=device)
    return windows[:, :context_length], windows[:, context_length:]


def anchor_windows(contexts, futures):
    """Subtract each window's last context value from its context and future.

    For a trending series: the networks then see changes relative to "now",
    which stay in the training range however far the level moves. Returns the
    shifted contexts and futures and the anchors, of shape (windows, 1), to
    add back to forecasts.
    """
    anchors = contexts[:, -1:].clone()
    return contexts - anchors, futures - anchors, anchors


# ---------------------------------------------------------------------------
# The two networks
# ---------------------------------------------------------------------------


class Discriminator(nn.Module):
    """Score a context followed by a continuation; return a logit per window.

    The input is the joined sequence plus its first differences. Differences
    make the step-to-step noise level easy to compare between the context and
    the continuation, which is how the discriminator catches samples that are
    too smooth. The output is a raw logit: pair it with BCEWithLogitsLoss.
    """

    def __init__(self, context_length, horizon, hidden_size=256, sees_context=True):
        super().__init__()
        self.context_length = context_length
        self.horizon = horizon
        self.hidden_size = hidden_size
        self.sees_context = sees_context
        sequence_length = context_length + horizon if sees_context else horizon
        self.net = nn.Sequential(
            nn.Linear(2 * sequence_length - 1, hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, hidden_size),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, context, continuation):
        _check_batch(self, context, continuation)
        sequence = torch.cat([context, continuation], dim=1)
        if not self.sees_context:
            sequence = continuation
        features = torch.cat([sequence, sequence.diff(dim=1)], dim=1)
        return self.net(features)


class Generator(nn.Module):
    """Read a context with an LSTM, mix in noise, and return a continuation.

    The LSTM's last hidden state summarises the context. The noise vector is
    joined to it before the output head, so different noise gives different
    continuations of the same context: a distribution, not one line. The head
    predicts the change from the last context value.
    """

    def __init__(self, context_length, horizon, noise_size=10, hidden_size=64):
        super().__init__()
        self.context_length = context_length
        self.horizon = horizon
        self.noise_size = noise_size
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden_size, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden_size + noise_size, 64),
            nn.LeakyReLU(0.2),
            nn.Linear(64, horizon),
        )

    def config(self):
        """Return the constructor arguments as a JSON-ready dict."""
        return {
            "context_length": self.context_length,
            "horizon": self.horizon,
            "noise_size": self.noise_size,
            "hidden_size": self.hidden_size,
        }

    def sample_noise(self, shape, device, rng=None):
        """Draw standard normal noise of shape `shape` + (noise_size,)."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return torch.randn(*shape, self.noise_size, device=device, generator=rng)

    def encode(self, context):
        """Summarise each context as the LSTM's last hidden state."""
        if context.ndim != 2 or context.shape[1] != self.context_length:
            raise ValueError(
                f"expected context of shape (batch, {self.context_length}), got "
                f"{tuple(context.shape)}; one feature per time step is supported"
            )
        # The initial state lives on the input's device, so the same code runs
        # on the CPU and on a GPU.
        state_shape = (1, context.shape[0], self.hidden_size)
        hidden = torch.zeros(state_shape, device=context.device)
        cell = torch.zeros(state_shape, device=context.device)
        _, (hidden, _) = self.lstm(context.unsqueeze(-1), (hidden, cell))
        return hidden[-1]

    def forward(self, context, noise):
        """Return continuations: (batch, horizon), or (batch, samples, horizon).

        Noise of shape (batch, samples, noise_size) draws several samples per
        context while reading each context only once.
        """
        summary = self.encode(context)
        if noise.ndim not in (2, 3) or noise.shape[0] != context.shape[0] \
                or noise.shape[-1] != self.noise_size:
            raise ValueError(
                f"expected noise of shape ({context.shape[0]}, {self.noise_size}) "
                f"or ({context.shape[0]}, samples, {self.noise_size}), got "
                f"{tuple(noise.shape)}"
            )
        last_value = context[:, -1:]
        if noise.ndim == 3:
            summary = summary.unsqueeze(1).expand(-1, noise.shape[1], -1)
            last_value = last_value.unsqueeze(1)
        change = self.head(torch.cat([summary, noise], dim=-1))
        return last_value + change


def _check_batch(discriminator, context, continuation):
    expected = (discriminator.context_length, discriminator.horizon)
    if (context.ndim, continuation.ndim) != (2, 2) \
            or (context.shape[1], continuation.shape[1]) != expected:
        raise ValueError(
            f"expected context (batch, {expected[0]}) and continuation "
            f"(batch, {expected[1]}), one feature per time step; got "
            f"{tuple(context.shape)} and {tuple(continuation.shape)}"
        )
    if context.shape[0] != continuation.shape[0]:
        raise ValueError(
            f"context and continuation batch sizes differ: {context.shape[0]} "
            f"and {continuation.shape[0]}"
        )


# ---------------------------------------------------------------------------
# Training: the two phases and the loop
# ---------------------------------------------------------------------------

bce_with_logits = nn.BCEWithLogitsLoss()


def _gradient_norm(module):
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return torch.stack(norms).norm().item() if norms else 0.0


def discriminator_step(discriminator, generator, optimizer, context, real_batch):
    """Update the discriminator once: real batch, then a detached fake batch.

    Returns the loss, the mean outputs and the gradient norm.
    """
    optimizer.zero_grad()

    # Phase 1a: real windows should score 1.
    real_logits = discriminator(context, real_batch)
    real_loss = bce_with_logits(real_logits, torch.ones_like(real_logits))
    real_loss.backward()

    # Phase 1b: generated windows should score 0. detach() stops this loss
    # from reaching the generator; its gradients add to the real ones.
    noise = generator.sample_noise(len(context), context.device)
    fake_batch = generator(context, noise).detach()
    fake_logits = discriminator(context, fake_batch)
    fake_loss = bce_with_logits(fake_logits, torch.zeros_like(fake_logits))
    fake_loss.backward()

    gradient_norm = _gradient_norm(discriminator)
    optimizer.step()
    stats = {
        "loss_d": (real_loss + fake_loss).item(),
        "grad_norm_d": gradient_norm,
        "d_real": torch.sigmoid(real_logits).mean().item(),
        "d_fake_before": torch.sigmoid(fake_logits).mean().item(),
    }
    return stats


def sample_crps(first_sample, second_sample, truth):
    """Estimate the CRPS from two samples per window: E|X-y| - E|X-X'|/2."""
    error = (first_sample - truth).abs().mean() + (second_sample - truth).abs().mean()
    spread = (first_sample - second_sample).abs().mean()
    return error / 2 - spread / 2


def generator_step(discriminator, generator, optimizer, context, real_batch,
                   crps_weight=10.0, loss="non_saturating"):
    """Update the generator once, with the discriminator as its loss.

    The non-saturating loss rewards D calling a fresh fake batch real,
    -log D(G(z)). The saturating minimax form, log(1 - D(G(z))), gives
    almost no gradient while D rejects the fakes. With `crps_weight` > 0, a
    second sample per window adds a CRPS term that rewards the right spread.
    On the standardized toy series that term ends near 0.08 and the
    adversarial loss near log 2 = 0.69, so the default weight of 10 gives the
    two a similar size.
    Returns the adversarial loss, the mean D(fake) and the gradient norm.
    """
    optimizer.zero_grad()
    noise = generator.sample_noise((len(context), 2), context.device)
    fake_samples = generator(context, noise)  # (batch, 2, horizon)
    fake_batch = fake_samples[:, 0]
    fake_logits = discriminator(context, fake_batch)
    if loss == "non_saturating":
        adversarial_loss = bce_with_logits(fake_logits, torch.ones_like(fake_logits))
    elif loss == "saturating":
        adversarial_loss = -bce_with_logits(fake_logits, torch.zeros_like(fake_logits))
    else:
        raise ValueError(f"invalid loss={loss!r}: use 'non_saturating' or 'saturating'")
    total_loss = adversarial_loss
    if crps_weight:
        crps = sample_crps(fake_batch, fake_samples[:, 1], real_batch)
        total_loss = total_loss + crps_weight * crps
    total_loss.backward()
    gradient_norm = _gradient_norm(generator)
    optimizer.step()
    return {
        "loss_g": adversarial_loss.item(),
        "d_fake_after": torch.sigmoid(fake_logits).mean().item(),
        "grad_norm_g": gradient_norm,
    }


class TrainingWarning(UserWarning):
    """A symptom of a GAN that is not learning, raised by `train_gan`."""


HISTORY_COLUMNS = [
    "epoch", "step", "loss_d", "grad_norm_d", "d_real", "d_fake_before",
    "loss_g", "d_fake_after", "grad_norm_g", "sample_spread", "learning_rate",
]

LOG_FORMAT = (
    "epoch {epoch:3d} step {step:6d} | loss_d {loss_d:.4f} loss_g {loss_g:.4f} | "
    "D(real) {d_real:.4f} D(fake) {d_fake_before:.4f} -> {d_fake_after:.4f}"
)


def sample_spread(generator, context, num_samples=64):
    """Return the mean standard deviation of samples for one context."""
    with torch.no_grad():
        contexts = context.reshape(1, -1).expand(num_samples, -1)
        noise = generator.sample_noise(num_samples, context.device)
        return generator(contexts, noise).std(dim=0).mean().item()


def _check_symptoms(history, raised, patience):
    """Return messages for symptoms seen in the last `patience` records."""
    if len(history) < patience:
        return []
    recent = history[-patience:]
    messages = []
    losses = [record["loss_d"] for record in recent]
    if "dead" not in raised and max(losses) - min(losses) < 1e-6:
        raised.add("dead")
        messages.append(
            f"dead discriminator: loss_d has stayed at {losses[-1]:.4f} for "
            f"{patience} log records, so no gradient reaches the generator; "
            "check the discriminator's output layer (no ReLU or sigmoid before "
            "BCEWithLogitsLoss)"
        )
    # A dead discriminator also scores fakes near 0, but it scores real windows
    # near 0 too; winning means telling the two apart.
    if "wins" not in raised and all(
        r["d_fake_before"] < 0.05 and r["d_real"] > 0.5 for r in recent
    ):
        raised.add("wins")
        messages.append(
            f"the discriminator wins outright: mean D(fake) has stayed below 0.05, "
            f"with D(real) above 0.5, "
            f"for {patience} log records and the generator's gradients vanish; "
            "lower the discriminator's learning rate or use the non-saturating "
            "generator loss"
        )
    if "collapse" not in raised and all(r["sample_spread"] < 0.01 for r in recent):
        raised.add("collapse")
        messages.append(
            f"mode collapse: the sample spread for a fixed context has stayed "
            f"below 0.01 for {patience} log records, so the generator ignores "
            "its noise; feed the noise closer to the output or reward spread"
        )
    return messages


def make_lr_schedule(optimizer, final_lr_scale, num_steps):
    """Return a schedule that lowers the learning rate linearly over `num_steps`.

    After `num_steps` calls of its step() the rate is `final_lr_scale` times
    the optimizer's starting rate, and it stays there.
    """
    return torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0, end_factor=final_lr_scale,
        total_iters=num_steps,
    )


def _check_windows(generator, *tensors):
    weight = next(generator.parameters())
    for name, tensor in zip(["contexts", "futures"], tensors):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(tensor).__name__}: cut "
                "the windows with gh.make_windows"
            )
        if tensor.dtype != weight.dtype:
            raise TypeError(
                f"{name} are {tensor.dtype} but the generator's weights are "
                f"{weight.dtype}: convert them with .to({weight.dtype})"
            )
        if tensor.device != weight.device:
            raise ValueError(
                f"{name} are on {tensor.device} but the generator is on "
                f"{weight.device}: move both to one device with .to(device)"
            )


def train_gan(generator, discriminator, contexts, futures, epochs=20, batch_size=128,
              learning_rate=1e-3, final_lr_scale=0.05, crps_weight=10.0,
              loss="non_saturating", log_every=100, print_every=None,
              monitor_context=None, patience=5, progress=True):
    """Train both networks with the two-phase loop; return the log records.

    `contexts` and `futures` are tensors on the training device. The learning
    rate of both optimizers falls linearly from `learning_rate` to
    `learning_rate * final_lr_scale` over the run (1 keeps it constant). Every
    `log_every` steps the loop records both losses, the mean discriminator
    outputs, the gradient norm of each network, the sample spread for
    `monitor_context` and the learning rate. It prints a line every
    `print_every` steps. It warns once per symptom (see `TrainingWarning`) and
    stops at a NaN or infinite loss. Returns a DataFrame with one row per record.
    """
    for name, value in [("epochs", epochs), ("batch_size", batch_size),
                        ("log_every", log_every), ("patience", patience)]:
        _check_length(name, value)
    if print_every is not None:
        _check_length("print_every", print_every)
    if isinstance(final_lr_scale, bool) or not isinstance(
            final_lr_scale, (int, float, np.floating)):
        raise TypeError(
            f"final_lr_scale must be a number in (0, 1], got {final_lr_scale!r}"
        )
    if not 0 < final_lr_scale <= 1:
        raise ValueError(
            f"invalid final_lr_scale={final_lr_scale!r}: use a value in (0, 1], "
            "where 1 keeps the learning rate constant"
        )
    _check_windows(generator, contexts, futures)
    if len(contexts) != len(futures):
        raise ValueError(
            f"contexts and futures differ in length: {len(contexts)} and "
            f"{len(futures)}; cut both with make_windows"
        )
    if len(contexts) < batch_size:
        raise ValueError(
            f"only {len(contexts)} windows for batch_size={batch_size}; "
            "lower batch_size"
        )
    if monitor_context is None:
        monitor_context = contexts[0]
    print_every = print_every or log_every * 5
    betas = (0.5, 0.999)  # beta1 = 0.5 is the usual choice for GANs
    d_optimizer = torch.optim.Adam(
        discriminator.parameters(), learning_rate, betas=betas, foreach=True
    )
    g_optimizer = torch.optim.Adam(
        generator.parameters(), learning_rate, betas=betas, foreach=True
    )
    num_batches = len(contexts) // batch_size
    # At a constant learning rate the two networks keep pushing each other
    # around. A falling rate lets the generator settle where the game balances.
    schedulers = [
        make_lr_schedule(optimizer, final_lr_scale, epochs * num_batches)
        for optimizer in (d_optimizer, g_optimizer)
    ]
    history, raised, step = [], set(), 0
    # A text bar on stdout, because a notebook then stores its final state. A
    # widget bar would be stored at 0%, without its state.
    bar = tqdm(total=epochs * num_batches, desc="training", disable=not progress,
               file=sys.stdout)
    for epoch in range(1, epochs + 1):
        # Shuffle on the training device; the last partial batch is dropped.
        order = torch.randperm(len(contexts), device=contexts.device)
        for batch in order[: num_batches * batch_size].split(batch_size):
            step += 1
            context, real_batch = contexts[batch], futures[batch]
            d_stats = discriminator_step(
                discriminator, generator, d_optimizer, context, real_batch
            )
            g_stats = generator_step(
                discriminator, generator, g_optimizer, context, real_batch,
                crps_weight=crps_weight, loss=loss,
            )
            for scheduler in schedulers:
                scheduler.step()
            bar.update()
            record = {"epoch": epoch, "step": step, **d_stats, **g_stats}
            if not all(math.isfinite(value) for value in record.values()):
                history.append(record)
                bar.close()
                warnings.warn(
                    f"training stopped at step {step}: a loss is NaN or infinite "
                    f"(loss_d {record['loss_d']}, loss_g {record['loss_g']}); lower "
                    "the learning rate or check the inputs for NaN",
                    TrainingWarning, stacklevel=2,
                )
                return pd.DataFrame(history, columns=HISTORY_COLUMNS)
            if step % log_every:
                continue
            record["sample_spread"] = sample_spread(generator, monitor_context)
            record["learning_rate"] = schedulers[1].get_last_lr()[0]
            history.append(record)
            if step % print_every == 0:
                # bar.write keeps the line from breaking into the bar.
                bar.write(LOG_FORMAT.format(**record), file=sys.stdout)
            for message in _check_symptoms(history, raised, patience):
                warnings.warn(message, TrainingWarning, stacklevel=2)
    bar.close()
    if not history:
        warnings.warn(
            f"no log record: {step} steps ran but log_every={log_every}; lower "
            "log_every to record the training", TrainingWarning, stacklevel=2,
        )
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def train_mse(generator, contexts, futures, epochs=15, batch_size=128,
              learning_rate=1e-3):
    """Train a generator as a plain point forecaster: MSE loss, zero noise.

    This is the network most users would build instead of a GAN; the
    evaluation notebook compares the two. Returns the loss of each epoch.
    """
    optimizer = torch.optim.Adam(generator.parameters(), learning_rate, foreach=True)
    num_batches = len(contexts) // batch_size
    epoch_losses = []
    for _ in range(epochs):
        order = torch.randperm(len(contexts), device=contexts.device)
        total = 0.0
        for batch in order[: num_batches * batch_size].split(batch_size):
            noise = torch.zeros(len(batch), generator.noise_size, device=contexts.device)
            loss = nn.functional.mse_loss(generator(contexts[batch], noise), futures[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        epoch_losses.append(total / num_batches)
    return epoch_losses


# ---------------------------------------------------------------------------
# Sampling and roll-out
# ---------------------------------------------------------------------------


@torch.no_grad()
def sample_forecasts(generator, contexts, num_samples=200, seed=0, chunk_size=1000):
    """Draw `num_samples` continuations per context: (windows, samples, horizon).

    A dedicated random generator on the contexts' device, seeded with `seed`,
    makes the samples reproducible without touching the global seed. The
    samples depend on `chunk_size` too, because the noise is drawn per chunk.
    """
    _check_length("num_samples", num_samples)
    _check_length("chunk_size", chunk_size)
    if not isinstance(contexts, torch.Tensor):
        raise TypeError(
            f"contexts must be a torch.Tensor, got {type(contexts).__name__}: cut "
            "them with gh.make_windows or convert with torch.as_tensor"
        )
    rng = torch.Generator(device=contexts.device).manual_seed(seed)
    samples = []
    for chunk in contexts.split(chunk_size):
        noise = generator.sample_noise((len(chunk), num_samples), contexts.device, rng)
        samples.append(generator(chunk, noise))
    return torch.cat(samples)


@torch.no_grad()
def roll_out(generator, context, steps, num_samples=100, seed=0):
    """Forecast `steps` values past one context by feeding samples back in.

    Each of the `num_samples` paths keeps its own history, so the paths fan
    out as errors accumulate. Returns a tensor of shape (num_samples, steps).
    """
    _check_length("steps", steps)
    _check_length("num_samples", num_samples)
    rng = torch.Generator(device=context.device).manual_seed(seed)
    paths = context.reshape(1, -1).repeat(num_samples, 1)
    while paths.shape[1] - generator.context_length < steps:
        recent = paths[:, -generator.context_length:]
        noise = generator.sample_noise(num_samples, context.device, rng=rng)
        paths = torch.cat([paths, generator(recent, noise)], dim=1)
    start = generator.context_length
    return paths[:, start:start + steps]


# ---------------------------------------------------------------------------
# Metrics (NumPy arrays in original units; samples on axis 1)
# ---------------------------------------------------------------------------


def mae(forecast, truth):
    """Return the mean absolute error of a point forecast."""
    return float(np.mean(np.abs(np.asarray(forecast) - np.asarray(truth))))


def rmse(forecast, truth):
    """Return the root mean squared error of a point forecast."""
    return float(np.sqrt(np.mean((np.asarray(forecast) - np.asarray(truth)) ** 2)))


def _check_sample_shapes(samples, truth):
    samples, truth = np.asarray(samples), np.asarray(truth)
    if samples.ndim < 2 or truth.shape != samples.shape[:1] + samples.shape[2:]:
        raise ValueError(
            f"samples of shape {samples.shape} need truth of shape "
            f"{samples.shape[:1] + samples.shape[2:]} (samples on axis 1), got "
            f"{truth.shape}"
        )
    return samples, truth


def crps_from_samples(samples, truth):
    """Return the mean CRPS of sample forecasts, samples on axis 1.

    Uses CRPS = E|X - y| - E|X - X'| / 2 over the empirical distribution of the
    samples; for a single sample it equals the absolute error.
    """
    samples, truth = _check_sample_shapes(samples, truth)
    samples, truth = samples.astype("float64"), truth.astype("float64")
    num_samples = samples.shape[1]
    error = np.abs(samples - truth[:, None]).mean(axis=1)
    # Sum over pairs of |x_i - x_j| from the sorted samples, in O(m log m).
    ordered = np.sort(samples, axis=1)
    ranks = np.arange(1, num_samples + 1)
    weights = (2 * ranks - num_samples - 1).reshape(
        (1, num_samples) + (1,) * (samples.ndim - 2)
    )
    spread = 2 * (weights * ordered).sum(axis=1) / num_samples**2
    return float(np.mean(error - spread / 2))


def crps_gaussian(mean, std, truth):
    """Return the mean closed-form CRPS of Normal(mean, std) forecasts."""
    if np.any(np.asarray(std) <= 0):
        raise ValueError(f"std must be positive, got {std}")
    z = (np.asarray(truth) - mean) / std
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return float(np.mean(std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))))


def interval_coverage(samples, truth, level):
    """Return the share of truths inside the central `level` sample interval."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    samples, truth = _check_sample_shapes(samples, truth)
    lower, upper = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=1)
    truth = np.asarray(truth)
    return float(np.mean((truth >= lower) & (truth <= upper)))


def pit_values(samples, truth):
    """Return the probability integral transform: the share of samples below y."""
    samples, truth = _check_sample_shapes(samples, truth)
    return (np.asarray(samples) < np.asarray(truth)[:, None]).mean(axis=1).ravel()


def score_forecast(samples, truth):
    """Return MAE, RMSE, CRPS and 50%/90% coverage of sample forecasts.

    The point forecast is the samples' median. With one sample per window the
    forecast is a point forecast: its CRPS equals its MAE and it has no
    interval, so the coverages are NaN.
    """
    samples, truth = _check_sample_shapes(samples, truth)
    point = np.median(samples, axis=1)
    has_interval = samples.shape[1] > 1
    return {
        "mae": mae(point, truth),
        "rmse": rmse(point, truth),
        "crps": crps_from_samples(samples, truth),
        "coverage_50": interval_coverage(samples, truth, 0.5) if has_interval else np.nan,
        "coverage_90": interval_coverage(samples, truth, 0.9) if has_interval else np.nan,
    }


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def plot_fan_chart(ax, time, samples, truth=None, color="C0", label="GAN median"):
    """Draw the median and the 50% and 90% bands of samples (samples, time)."""
    quantiles = np.quantile(samples, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    ax.fill_between(time, quantiles[0], quantiles[4], color=color, alpha=0.2,
                    label="90% interval")
    ax.fill_between(time, quantiles[1], quantiles[3], color=color, alpha=0.4,
                    label="50% interval")
    ax.plot(time, quantiles[2], color=color, label=label)
    if truth is not None:
        ax.plot(time, truth, color="black", linewidth=1, label="truth")
    return ax


def plot_history(history):
    """Plot losses, discriminator outputs and diagnostics from `train_gan`."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(16, 3.5))
    history.plot(x="step", y=["loss_d", "loss_g"], ax=axes[0], title="losses")
    history.plot(x="step", y=["d_real", "d_fake_before", "d_fake_after"],
                 ax=axes[1], title="mean discriminator output")
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1)
    history.plot(x="step", y=["grad_norm_d", "grad_norm_g"], ax=axes[2],
                 title="gradient norm", logy=True)
    history.plot(x="step", y="sample_spread", ax=axes[3],
                 title="sample spread, fixed context")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------
# Checkpoints: weights as a state dict, configuration as JSON
# ---------------------------------------------------------------------------


def save_generator(generator, path, extra=None):
    """Save weights to `path` (.pt) and configuration to the .json beside it.

    `extra` contains JSON-ready facts the checkpoint needs to be used, such as
    the scaler's parameters. An existing file that differs is kept as
    `<name>.previous<suffix>`.
    """
    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(
            f"checkpoint path {path} ends in .json, the name of its configuration "
            "file: use a .pt path"
        )
    extra = extra or {}
    if "generator" in extra:
        raise ValueError(
            "extra must not contain the key 'generator': it contains the "
            "generator's configuration"
        )
    # Serialised before anything is written, so an extra that is not
    # JSON-ready leaves no checkpoint without its configuration.
    config_text = json.dumps({"generator": generator.config(), **extra}, indent=2)
    # Tensors move to the CPU first, so a checkpoint written on a GPU loads
    # on a machine without one.
    state = {name: tensor.cpu() for name, tensor in generator.state_dict().items()}
    save_file_keeping_previous(lambda target: torch.save(state, target), path)
    save_file_keeping_previous(
        lambda target: target.write_text(config_text + "\n"),
        path.with_suffix(".json"),
    )
    return path


def load_generator(path, device=None):
    """Load a generator saved by `save_generator`; return it and its config."""
    path = Path(path)
    if path.suffix == ".json":
        raise ValueError(
            f"{path} is the configuration beside a checkpoint: pass the weights "
            f"file, {path.with_suffix('.pt').name}"
        )
    config_path = path.with_suffix(".json")
    for required in (path, config_path):
        if not required.is_file():
            raise FileNotFoundError(
                f"checkpoint file not found: {required} (a checkpoint is a .pt "
                "file with a .json file of the same name beside it; run the "
                "training notebook to create one)"
            )
    try:
        config = json.loads(config_path.read_text())
        arguments = config["generator"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{config_path} is not a generator configuration (expected JSON with "
            f"a 'generator' entry): {error}"
        ) from error
    try:
        generator = Generator(**arguments)
    except TypeError as error:
        raise ValueError(f"invalid generator configuration in {config_path}: {error}")
    # Checked here, because torch.load would raise a missing CUDA as a
    # corrupt file.
    device = _check_device(device or "cpu")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise ValueError(
            f"{path} is not a checkpoint written by save_generator: "
            f"torch.load(weights_only=True) failed with {type(error).__name__}"
        ) from error
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict; save it with save_generator")
    expected = generator.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match its configuration: missing "
            f"weights {missing}, unexpected weights {unexpected}"
        )
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise ValueError(
                f"checkpoint {path} does not match its configuration: weight "
                f"{name!r} has shape {tuple(state[name].shape)} but the "
                f"configuration {arguments} needs {tuple(tensor.shape)}"
            )
    generator.load_state_dict(state)
    return generator.to(device), config
