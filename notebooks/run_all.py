"""Execute the notebooks in order, in place, refreshing outputs and figures.

Usage, from the repository root:

    python notebooks/run_all.py              # every notebook
    python notebooks/run_all.py 04 05        # the notebooks whose names start so

Each notebook runs in a fresh python3 kernel with the notebooks/ folder as its
working directory, so it sees the same paths as in JupyterLab. Stored outputs
are written without per-cell timing or widget state, which keeps diffs small.
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parent


def make_client(notebook):
    """Return a client that executes `notebook` in a fresh python3 kernel.

    The kernel starts in notebooks/, and the stored outputs get no per-cell
    timing or widget state.
    """
    return NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        record_timing=False,
        store_widget_state=False,
        coalesce_streams=True,
    )


def execute_notebook(path):
    """Execute one notebook in place; return its wall time in seconds."""
    notebook = nbformat.read(path, as_version=4)
    client = make_client(notebook)
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        # Written on failure too, so the failing cell's error is visible.
        nbformat.write(notebook, path)
    return time.perf_counter() - start


def main(prefixes):
    paths = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        paths = [p for p in paths if p.name.startswith(tuple(prefixes))]
        if not paths:
            sys.exit(f"no notebook in {NOTEBOOK_DIR} starts with {prefixes}")
    total = 0.0
    for path in paths:
        elapsed = execute_notebook(path)
        total += elapsed
        print(f"{path.name:32s} {elapsed:6.1f} s", flush=True)
    print(f"{'total':32s} {total:6.1f} s")


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        sys.exit(0)
    main(sys.argv[1:])
