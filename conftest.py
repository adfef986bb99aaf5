"""Test setup shared by the unit tests and the notebook tests."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import gan_helpers

ROOT = Path(__file__).resolve().parent
CREATED_OUTPUT_DIR = pytest.StashKey[str]()


def pytest_configure(config):
    # nbval resolves a relative sanitizer path from the working directory, so
    # set it here as an absolute path that works from any folder.
    if config.option.nbval_sanitize_with is None:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
    # The stored outputs were made on the CPU, so the notebook kernels, which
    # inherit this variable, run there too unless it names another device.
    if not os.environ.get(gan_helpers.DEVICE_VARIABLE):
        os.environ[gan_helpers.DEVICE_VARIABLE] = "cpu"
    # The notebook kernels inherit this variable, so every file they write
    # (data, checkpoint, figures) goes to a temporary folder and the tests
    # leave the repository unchanged.
    if gan_helpers.OUTPUT_DIR_VARIABLE not in os.environ:
        output_dir = tempfile.mkdtemp(prefix="gan-tutorial-test-outputs-")
        os.environ[gan_helpers.OUTPUT_DIR_VARIABLE] = output_dir
        config.stash[CREATED_OUTPUT_DIR] = output_dir


def pytest_unconfigure(config):
    # Remove only a folder this run created, never one the caller chose.
    output_dir = config.stash.get(CREATED_OUTPUT_DIR, None)
    if output_dir is not None:
        shutil.rmtree(output_dir, ignore_errors=True)
        del os.environ[gan_helpers.OUTPUT_DIR_VARIABLE]
