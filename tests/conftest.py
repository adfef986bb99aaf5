"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # The networks in the unit tests are tiny: on a busy two-core CPU, two
    # threads made the training tests about 70 times slower than one thread.
    # The caller's thread count is restored afterwards.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
