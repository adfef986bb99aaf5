"""Ablation of the toy GAN's design: what fixes its under-dispersed samples.

Run by hand from the repository root (about 9 minutes on a 2-core CPU):

    python tests/ablation.py

Each variant trains from seed 0 for notebook 04's 20 epochs of batch 128 and
is scored on the toy test split with 200 samples per window, in original
units. The table goes to figures/ablation.csv. Then the three designs with a
CRPS term train again from seeds 1 to 4, which shows how far the scores move
with the seed alone. That table goes to figures/ablation_seeds.csv, and
notebook 07 shows both. pytest does not collect this file.
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
EXTRA_SEEDS = [1, 2, 3, 4]


class RawDiscriminator(gh.Discriminator):
    """The discriminator without the first differences: raw values only."""

    def __init__(self, context_length, horizon):
        super().__init__(context_length, horizon)
        self.net[0] = nn.Linear(context_length + horizon, self.hidden_size)

    def forward(self, context, continuation):
        return self.net(torch.cat([context, continuation], dim=1))


def train_crps_only(generator, contexts, futures, epochs, batch_size=128,
                    final_lr_scale=0.05):
    """Train with the two-sample CRPS term alone: no discriminator at all.

    The optimizer and the learning-rate schedule are those of gh.train_gan.
    """
    optimizer = torch.optim.Adam(generator.parameters(), 1e-3, betas=(0.5, 0.999))
    num_batches = len(contexts) // batch_size
    scheduler = gh.make_lr_schedule(optimizer, final_lr_scale, epochs * num_batches)
    for _ in range(epochs):
        order = torch.randperm(len(contexts))
        for batch in order[: num_batches * batch_size].split(batch_size):
            noise = generator.sample_noise((len(batch), 2), contexts.device)
            samples = generator(contexts[batch], noise)
            loss = gh.sample_crps(samples[:, 0], samples[:, 1], futures[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()


# Every variant uses gh.train_gan's defaults (learning rate 1e-3 falling
# linearly to 5e-5, CRPS weight 10) except for the arguments it lists.
VARIANTS = [
    # (name, what changes, discriminator class, train_gan arguments)
    ("adversarial only, lr 2e-4", "the usual DCGAN learning rate, constant",
     gh.Discriminator,
     {"learning_rate": 2e-4, "final_lr_scale": 1.0, "crps_weight": 0.0}),
    ("adversarial only, raw values", "D sees no first differences",
     RawDiscriminator, {"final_lr_scale": 1.0, "crps_weight": 0.0}),
    ("adversarial only", "lr 1e-3, constant; D sees first differences",
     gh.Discriminator, {"final_lr_scale": 1.0, "crps_weight": 0.0}),
    ("adversarial only, falling lr", "lr falls linearly to 5%",
     gh.Discriminator, {"crps_weight": 0.0}),
    ("CRPS weight 1, constant lr", "adds the CRPS term: the earlier design",
     gh.Discriminator, {"crps_weight": 1.0, "final_lr_scale": 1.0}),
    ("CRPS weight 1", "lr falls linearly to 5%",
     gh.Discriminator, {"crps_weight": 1.0}),
    ("CRPS weight 10", "the design notebook 04 trains", gh.Discriminator, {}),
    ("CRPS term only", "no discriminator at all", None, {}),
]

# The designs that train again from the extra seeds.
SEED_VARIANTS = ["CRPS weight 1, constant lr", "CRPS weight 1", "CRPS weight 10"]


def train_and_score(variant, seed, windows, scaler, truth):
    """Train one variant from `seed`; return its scores on the test split."""
    name, change, discriminator_class, arguments = variant
    gh.seed_everything(seed)
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
    print(f"{name:28s} seed {seed} crps {scores['crps']:.4f} coverage_90 "
          f"{scores['coverage_90']:.3f} spread {spread:.3f} ({seconds:.0f} s)",
          flush=True)
    return {"variant": name, "change": change, "seed": seed, **scores,
            "sample_spread": spread, "train_seconds": round(seconds, 1)}


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

    rows = [train_and_score(variant, SEED, windows, scaler, truth)
            for variant in VARIANTS]
    table = pd.DataFrame(rows).drop(columns="seed")
    path = gh.output_path("figures/ablation.csv")
    table.to_csv(path, index=False, float_format="%.4f")
    print("wrote", path)

    variants = {variant[0]: variant for variant in VARIANTS}
    seed_rows = [train_and_score(variants[name], seed, windows, scaler, truth)
                 for name in SEED_VARIANTS for seed in EXTRA_SEEDS]
    seed_table = pd.DataFrame(seed_rows).drop(columns=["change", "train_seconds"])
    path = gh.output_path("figures/ablation_seeds.csv")
    seed_table.to_csv(path, index=False, float_format="%.4f")
    print("wrote", path)


if __name__ == "__main__":
    main()
