"""How the probes' costs are timed: warm-up, interleaving and reduction of `costs.time_calls`."""

import torch

from bnrepro.costs import time_calls


def test_time_calls_warms_up_interleaves_and_reduces_each_function_s_samples():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("step", "probe")}
    counts = time_calls(fns, repeats=3, device=torch.device("cpu"), reduce=len)
    assert calls == ["step", "probe"] * 4  # one warm-up call each, then the functions alternate
    assert counts == {"step": 3, "probe": 3}  # the warm-up is not timed
    best = time_calls(fns, repeats=2, device=torch.device("cpu"))
    assert set(best) == {"step", "probe"} and all(t >= 0 for t in best.values())
