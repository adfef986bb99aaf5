"""Tests that the README's result tables match the stored evaluation run."""

from pathlib import Path

import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README_TEXT = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
EVALUATION = pd.read_csv(REPO_ROOT / "figures" / "evaluation.csv")
SCORE_COLUMNS = ["mae", "rmse", "crps", "coverage_50", "coverage_90"]

# The start of the README line that introduces each dataset's table.
TABLE_INTRODUCTIONS = {
    "toy": "On the toy test split",
    "co2": "On the CO2 test split",
}


def readme_table(line_start):
    """Parse the first Markdown table after the line that starts with `line_start`."""
    lines = README_TEXT.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith(line_start)), None
    )
    assert start is not None, f"README has no line starting {line_start!r}"
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    assert len(rows) > 2, f"README has no table after {line_start!r}"
    header, body = rows[0], rows[2:]  # rows[1] is the --- separator
    return pd.DataFrame(body, columns=header).set_index(header[0])


@pytest.mark.parametrize("dataset", sorted(TABLE_INTRODUCTIONS))
def test_readme_results_match_evaluation_csv(dataset):
    table = readme_table(TABLE_INTRODUCTIONS[dataset])
    stored = EVALUATION[EVALUATION.dataset == dataset].set_index("model")
    assert list(table.index) == list(stored.index)
    for model, row in stored.iterrows():
        for column, readme_cell in zip(SCORE_COLUMNS, table.loc[model]):
            expected = "-" if pd.isna(row[column]) else f"{row[column]:.4f}"
            assert readme_cell == expected, (dataset, model, column)


def test_readme_prose_numbers_match_evaluation_csv():
    scores = EVALUATION.set_index(["dataset", "model"])
    toy_gan, toy_oracle = scores.loc[("toy", "GAN")], scores.loc[("toy", "oracle")]
    crps_ratio = toy_gan.crps / toy_oracle.crps
    co2_coverage = scores.loc[("co2", "GAN"), "coverage_90"]
    prose = " ".join(README_TEXT.split())  # the sentences wrap across lines
    assert f"CRPS is {crps_ratio:.2f} times the oracle's" in prose
    assert f"interval covers {co2_coverage:.2f} of the test values" in prose
