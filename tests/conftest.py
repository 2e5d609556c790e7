"""Shared test settings."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread: the tests' networks are tiny, and on a shared 2-core machine two OpenMP threads ran
    10-30x slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
