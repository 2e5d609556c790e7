"""Command line: `python -m bnrepro train ...` (one run), `python -m bnrepro book-runs ...` (every book run) and
`python -m bnrepro results` (the README's table of the paper's claims beside ours)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .budgets import BUDGET_ORDER, get_budget
from .models import NORMS, VGG_CONFIGS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bnrepro", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one run (or load its stored record) and print its summary",
                       description="Train one run at a budget, or load its stored record if it exists.")
    t.add_argument("--budget", default="cpu", choices=BUDGET_ORDER,
                   help="size preset from bnrepro.budgets (default: cpu): smoke = seconds on CPU, "
                        "cpu = narrow VGG on two cores, paper = the paper's setup for a GPU")
    t.add_argument("--model", default=None, choices=[*VGG_CONFIGS, "dln"],
                   help="network: a VGG for CIFAR-10 or the 25-layer deep linear network (default: the budget's VGG)")
    t.add_argument("--norm", default="batch", choices=NORMS,
                   help="normalisation after each conv/linear map: none, batch (BatchNorm), noisy (Algorithm 1), "
                        "l1, l2, linf (Section 3.3); default batch")
    t.add_argument("--lr", type=float, default=None,
                   help="fixed SGD learning rate (default: 0.1 for VGG, 1e-6 for the DLN, as in the paper)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default: the budget's)")
    t.add_argument("--seed", type=int, default=0, help="seed for initialisation, data order and noise (default 0)")
    t.add_argument("--data", default=None,
                   help="CIFAR-10 location: cifar-10-batches-py folder, image-folder dir or .tar.gz, or 'synthetic' "
                        "(default: $BNREPRO_DATA, or synthetic for the smoke budget)")
    t.add_argument("--download", action="store_true",
                   help="download CIFAR-10 through torchvision into --data if it is missing (needs internet)")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when present; default)")
    t.add_argument("--force", action="store_true", help="retrain even if a stored record exists")
    t.add_argument("--records", default=None, help="record store folder (default: $BNREPRO_RECORDS or ./records)")

    r = sub.add_parser("book-runs", help="compute every run the book needs at a budget (stored ones are loaded)",
                       description="Compute every run the book's chapters need at a budget.")
    r.add_argument("--budget", default="cpu", choices=BUDGET_ORDER, help="size preset (default: cpu)")
    r.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    r.add_argument("--data", default=None, help="CIFAR-10 location (default: $BNREPRO_DATA)")
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    r.add_argument("--records", default=None, help="record store folder")

    s = sub.add_parser("results", help="the paper's headline claims beside ours, as a Markdown table from the records",
                       description="Print the README's results table, computed from the stored records at the most "
                                   "faithful budget with every seed recorded (nothing is trained), or check or "
                                   "write the table between a file's results markers.")
    s.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2, as the seeds appendix)")
    out = s.add_mutually_exclusive_group()
    out.add_argument("--check", type=Path, metavar="FILE",
                     help="exit 1 with a diff when FILE's table (e.g. README.md) differs from the records")
    out.add_argument("--write", type=Path, metavar="FILE", help="replace the table between FILE's results markers")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "results":
        from .results import command

        try:
            if not all(x.strip().isdigit() for x in args.seeds.split(",")):
                raise ValueError(f"--seeds takes comma-separated seeds, e.g. 0,1,2; got {args.seeds!r}")
            return command([int(x) for x in args.seeds.split(",")], args.check, args.write)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    from .experiments import BOOK_SPECS, Spec, data_kind, data_root, get_or_train, get_run, make_config
    from .records import RunStore

    store = RunStore(args.records)
    try:
        if args.command == "train":
            budget = get_budget(args.budget)
            model = args.model or "vgg"
            lr = args.lr if args.lr is not None else (1e-6 if model == "dln" else 0.1)
            root = "gaussian" if model == "dln" else data_root(args.data, budget)
            if args.download:
                from .data import load_cifar10
                load_cifar10(root, download=True)
            cfg = make_config(Spec("dln" if model == "dln" else "vgg", args.norm, lr), budget, args.seed,
                              data_kind(root))
            if model != "dln" and args.model:
                cfg = dataclasses.replace(cfg, model=args.model)
            if args.steps is not None:
                cfg = dataclasses.replace(cfg, steps=args.steps)
            rec = get_or_train(cfg, root, device=args.device, store=store, force=args.force, progress=True)
            print(json.dumps({"record": str(store.path(rec.config)), "status": rec.status,
                              **rec.summary}, indent=1))
        else:
            for seed in (int(s) for s in args.seeds.split(",")):
                for spec in BOOK_SPECS:
                    rec = get_run(spec, args.budget, seed, data=args.data, device=args.device, store=store,
                                  progress=True)
                    print(f"{spec.model:4s} {spec.norm:6s} lr={spec.lr:<6g} seed={seed} {rec.status:9s} "
                          f"{rec.summary['wall_time_s']:8.1f}s  {store.path(rec.config, '').name}", flush=True)
    except ValueError as e:  # bad input: say what is wrong and how to fix it, without a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
