"""Named compute budgets: every size knob of every experiment, in one commented place.

`smoke` runs the whole book in seconds on a CPU (CI), `cpu` runs it on a CPU with real CIFAR-10 and a narrower VGG,
`cpu15k` trains that narrower VGG for the paper's 15,000 steps (the VGG runs of Sections 2.1, 2.2, 3.1, 3.3 and
Part IV.1), `paper` is the paper's setup (Appendix A.1) for a GPU. `BUDGET_ORDER` is the chain the book's `best`
picks from; the width ladder's budgets (`LADDER`) sit beside it: the `cpu` VGG at other widths, for the scale
appendix only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Budget:
    name: str
    description: str
    # --- VGG on CIFAR-10 (paper: VGG, plain SGD, batch 128, fixed LR, 15,000 steps, no augmentation) ---
    vgg_arch: str  # vgg11 | vgg13 | vgg16 | vgg19; the paper's layer numbers (#13) imply VGG-16
    vgg_width: float  # channel multiplier: 1.0 is 64-128-256-512-512
    vgg_steps: int
    vgg_batch_size: int
    eval_every: int  # test accuracy every this many steps (and at the last step)
    test_limit: int | None  # evaluate on the first N test images (None: all 10,000)
    train_limit: int | None  # train on the first N training images (None: all 50,000)
    vgg_probe_every: int  # probes (activations, ICS, landscape) every this many steps
    # --- 25-layer deep linear network (paper: full-batch GD on 1000 Gaussian samples, 10,000 steps) ---
    dln_steps: int
    dln_samples: int
    dln_probe_every: int
    # Data used when none is given: "synthetic" or None (then BNREPRO_DATA or --data is required).
    default_data: str | None
    # The paper sections whose runs this budget records (None: every section); `book-runs` computes only these.
    sections: tuple[str, ...] | None = None
    # --- the CIFAR-10 ResNet of Part IV (ResNet-20; its steps, batch, LR schedule and probes are the VGG's) ---
    resnet_width: float = 1.0  # channel multiplier: 1.0 is He et al.'s 16-32-64
    # The arithmetic of the VGG and ResNet training steps (`bnrepro.train.PRECISIONS`: float32 | tf32 | bf16; probes
    # and evaluation always compute in strict float32; the DLN always trains in its dtype). Strict float32 at every
    # budget until step times measured on a GPU (`python -m bnrepro window` prints them) argue for another at `paper`.
    precision: str = "float32"

    def to_dict(self) -> dict:
        return asdict(self)


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(
        name="smoke",
        description="seconds on a CPU: checks that every code path runs (CI); numbers mean nothing",
        vgg_arch="vgg16", vgg_width=1 / 16, vgg_steps=30, vgg_batch_size=32,
        eval_every=15, test_limit=256, train_limit=1024, vgg_probe_every=10,
        dln_steps=200, dln_samples=1000, dln_probe_every=50,
        default_data="synthetic", resnet_width=1 / 4,
    ),
    "cpu": Budget(
        name="cpu",
        description="real CIFAR-10 on a CPU: VGG-16 at 1/8 width, fewer steps; every run of the book, "
                    "at each seed (the seeds appendix uses three)",
        vgg_arch="vgg16", vgg_width=1 / 8, vgg_steps=2500, vgg_batch_size=128,
        eval_every=250, test_limit=None, train_limit=None, vgg_probe_every=50,
        dln_steps=10_000, dln_samples=1000, dln_probe_every=100,
        # ResNet-20 at half width (8-16-32 channels, 68k weights) trains about as fast as the 1/8-width VGG on a CPU
        default_data=None, resnet_width=1 / 2,
    ),
    "cpu15k": Budget(
        name="cpu15k",
        description="the paper's schedule on a CPU, for the VGG runs of Sections 2.1, 2.2, 3.1, 3.3 and Part IV.1: "
                    "the cpu budget's VGG-16 at 1/8 width trained 15,000 steps at batch 128 as the paper does; what "
                    "its runs cost is added up from their records in the setup appendix",
        vgg_arch="vgg16", vgg_width=1 / 8, vgg_steps=15_000, vgg_batch_size=128,
        # probes every 250 steps: Figure 1c's step labels 2,000, 6,000, 10,000 and 14,000 are among them
        eval_every=500, test_limit=None, train_limit=None, vgg_probe_every=250,
        dln_steps=10_000, dln_samples=1000, dln_probe_every=100,
        default_data=None, sections=("2.1", "2.2", "3.1", "3.3", "IV.1"), resnet_width=1 / 2,
    ),
    "paper": Budget(
        name="paper",
        description="the paper's setup (VGG-16 at full width, 15,000 steps; DLN 10,000 steps): needs a GPU",
        vgg_arch="vgg16", vgg_width=1.0, vgg_steps=15_000, vgg_batch_size=128,
        eval_every=500, test_limit=None, train_limit=None, vgg_probe_every=100,
        dln_steps=10_000, dln_samples=1000, dln_probe_every=100,
        default_data=None,
        precision="float32",  # the paper budget's one precision choice: strict float32 until GPU step times argue
    ),
}


def _ladder_rung(name: str, width: float, which: str) -> Budget:
    """A rung of the width ladder (scale appendix): the cpu budget at another VGG width, for the standard and BN
    networks of Sections 2.2 and 3.1; their DLN runs are the cpu budget's records (`dln_home`)."""
    return replace(BUDGETS["cpu"], name=name, vgg_width=width, sections=("2.2", "3.1"),
                   description=f"the width ladder's {which} rung: the cpu budget's VGG-16 at 1/{1 / width:.0f} width "
                               "(2,500 steps, probes every 50), the standard and BN networks of Sections 2.2 and 3.1")


# Widths 1/2 and 1 are read from `paper` where recorded.
BUDGETS |= {"cpu_w16": _ladder_rung("cpu_w16", 1 / 16, "narrowest"),
            "cpu_w4": _ladder_rung("cpu_w4", 1 / 4, "widest CPU")}

#: Budgets from cheapest to most faithful; the book shows the highest one that has records.
BUDGET_ORDER = ("smoke", "cpu", "cpu15k", "paper")
#: The width ladder of the scale appendix, narrowest first: (budget, VGG width). `paper` is its top rung; a budget
#: with a width between (1/2, say) joins by one line here.
LADDER = ("cpu_w16", "cpu", "cpu_w4", "paper")
#: Every budget name a command accepts.
BUDGET_NAMES = tuple(BUDGETS)
#: The most a committed record of each budget may weigh, its .npz and .json together, in MB (tests/test_records.py):
#: a little over the largest kind of record the budget makes in the record format (`bnrepro.records.FORMAT`). cpu:
#: a DLN run of Part IV's sweep (its per-step residuals, 1.0 MB); cpu15k and paper: a 15,000-step VGG with per-step
#: activations (1.1 MB) or Part IV's per-step weight quantities (about 1.3 MB); the ladder: a 2,500-step VGG with
#: activations (0.3 MB); smoke: tiny runs, never committed.
RECORD_MB = {"smoke": 0.1, "cpu": 1.1, "cpu15k": 1.4, "cpu_w16": 0.4, "cpu_w4": 0.4, "paper": 1.4}

_DLN_FIELDS = ("dln_steps", "dln_samples", "dln_probe_every")


def dln_home(budget: Budget) -> str:
    """The budget whose name a DLN run's config carries: the first of `BUDGETS` with the same DLN settings.

    The DLN is the same network at `cpu`, `cpu15k`, the ladder and `paper`, so each of its runs is one record
    (under `records/cpu/`), computed once and read by every budget that has it.
    """
    same = [b for b in BUDGETS.values() if all(getattr(b, f) == getattr(budget, f) for f in _DLN_FIELDS)]
    return same[0].name if same else budget.name


def width_fraction(x: float) -> str:
    """A width multiplier as the fraction a reader says: "1/8", "1/64", "1"."""
    return "1" if x == 1 else f"1/{1 / x:.0f}" if abs(1 / x - round(1 / x)) < 1e-9 else f"{x:g}"


def get_budget(name: str) -> Budget:
    """The named budget; an unknown name fails listing the valid ones."""
    try:
        return BUDGETS[name]
    except KeyError:
        raise ValueError(f"unknown budget {name!r}: choose one of {', '.join(BUDGETS)}") from None
