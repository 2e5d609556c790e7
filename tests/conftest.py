"""Shared test settings."""

import pytest
import torch

import bnrepro.train as train_mod


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread: the tests' networks are tiny, and on a shared 2-core machine two OpenMP threads ran
    10-30x slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def capture_models(monkeypatch) -> list:
    """Make train() hand out the models it builds, so a test can compare the final weights and buffers."""
    built, real = [], train_mod.build_model

    def build(*args, **kw):
        built.append(real(*args, **kw))
        return built[-1]

    monkeypatch.setattr(train_mod, "build_model", build)
    return built
