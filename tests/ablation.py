"""Ablation of the toy GAN's design: what fixes its under-dispersed samples.

Run by hand from the repository root (about 2 minutes on a 2-core CPU):

    python tests/ablation.py

Each variant trains from the same seed with the settings of notebook 04 (20
epochs, batch 128) and is scored on the toy test split with 200 samples per
window, in original units. The table goes to figures/ablation.csv, which
notebook 07 shows. pytest does not collect this file.
"""

import sys
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import gan_helpers as gh  # noqa: E402

CONTEXT_LENGTH, HORIZON, EPOCHS, SEED = 42, 10, 20, 0


class RawDiscriminator(gh.Discriminator):
    """The discriminator without the first differences: raw values only."""

    def __init__(self, context_length, horizon):
        super().__init__(context_length, horizon)
        self.net[0] = nn.Linear(context_length + horizon, self.hidden_size)

    def forward(self, context, continuation):
        return self.net(torch.cat([context, continuation], dim=1))


def train_crps_only(generator, contexts, futures, epochs, batch_size=128):
    """Train with the two-sample CRPS term alone: no discriminator at all."""
    optimizer = torch.optim.Adam(generator.parameters(), 1e-3, betas=(0.5, 0.999))
    num_batches = len(contexts) // batch_size
    for _ in range(epochs):
        order = torch.randperm(len(contexts))
        for batch in order[: num_batches * batch_size].split(batch_size):
            noise = generator.sample_noise((len(batch), 2), contexts.device)
            samples = generator(contexts[batch], noise)
            loss = gh.sample_crps(samples[:, 0], samples[:, 1], futures[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


VARIANTS = [
    # (name, what changes, discriminator class, train_gan arguments)
    ("adversarial only, lr 2e-4", "the usual DCGAN learning rate",
     gh.Discriminator, {"learning_rate": 2e-4, "crps_weight": 0.0}),
    ("adversarial only, raw values", "D sees no first differences",
     RawDiscriminator, {"crps_weight": 0.0}),
    ("adversarial only", "lr 1e-3, D sees first differences",
     gh.Discriminator, {"crps_weight": 0.0}),
    ("adversarial + CRPS term", "the design notebook 04 trains",
     gh.Discriminator, {"crps_weight": 1.0}),
    ("CRPS term only", "no discriminator at all", None, {}),
]


def main():
    gh.seed_everything(SEED)
    series = gh.load_series(gh.REPO_ROOT / "data" / "toy_series.csv",
                            column="value", time_column="t")
    train, validation, test = gh.split_by_time(series, context_length=CONTEXT_LENGTH,
                                               horizon=HORIZON)
    scaler = gh.StandardScaler().fit(train)
    windows = {}
    for name, part in [("train", train), ("validation", validation), ("test", test)]:
        windows[name] = gh.make_windows(scaler.transform(part), CONTEXT_LENGTH, HORIZON)
    truth = scaler.inverse_transform(windows["test"][1].numpy())

    rows = []
    for name, change, discriminator_class, arguments in VARIANTS:
        gh.seed_everything(SEED)
        generator = gh.Generator(CONTEXT_LENGTH, HORIZON)
        start = time.perf_counter()
        if discriminator_class is None:
            train_crps_only(generator, *windows["train"], EPOCHS)
        else:
            discriminator = discriminator_class(CONTEXT_LENGTH, HORIZON)
            gh.train_gan(generator, discriminator, *windows["train"], epochs=EPOCHS,
                         monitor_context=windows["validation"][0][0],
                         progress=False, print_every=10**9, **arguments)
        seconds = time.perf_counter() - start
        samples = gh.sample_forecasts(generator, windows["test"][0], num_samples=200)
        samples = scaler.inverse_transform(samples.numpy())
        scores = gh.score_forecast(samples, truth)
        spread = float(samples.std(axis=1).mean())
        rows.append({"variant": name, "change": change, **scores,
                     "sample_spread": spread, "train_seconds": round(seconds, 1)})
        print(f"{name:32s} crps {scores['crps']:.4f} coverage_90 "
              f"{scores['coverage_90']:.3f} spread {spread:.3f} ({seconds:.0f} s)",
              flush=True)

    table = pd.DataFrame(rows)
    path = gh.output_path("figures/ablation.csv")
    table.to_csv(path, index=False, float_format="%.4f")
    print("wrote", path)


if __name__ == "__main__":
    main()
