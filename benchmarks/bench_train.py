"""Training throughput of bnrepro's trainer against a conventional PyTorch data pipeline, on the same model and data.

In one run, per device: VGG-16 with BatchNorm (width 1/8 on CPU, 1.0 on CUDA by default), batch 128, plain SGD at
lr 0.1, trained

  (a) by bnrepro's real code path: `bnrepro.train.train` itself (a RunConfig without probes, eval_every beyond the
      last step), on data held on the device by `bnrepro.data.load_cifar10`, whose `Cifar10.batch(step, 128, seed)`
      serves every step. The steps are timed by stamping the clock when train() asks for the batch of a window's first
      step (a thin wrapper around the Cifar10 object; it synchronises CUDA at those stamps only). The evaluations
      train() runs at step 0 and at the end fall outside the windows;
  (b) by a conventional loop: a torchvision dataset over the same images (ImageFolder on an extracted copy of the
      image-folder archive or directory, or torchvision's CIFAR10 for a cifar-10-batches-py folder) with per-sample
      ToTensor + Normalize, a DataLoader(batch_size=128, shuffle=True, num_workers, pin_memory on CUDA, persistent
      workers), `.to(device, non_blocking=True)` per batch and the same forward/backward/SGD step. It does not sync
      per step (no loss.item()), which favours it.

Then (c): the same DataLoader alone, batches moved to the device and no model, which is the most (b) could reach
on any device: where (c) is not far above (b), the loop waits for its data. Both loops run under the trainer's
device settings (`bnrepro.train.device_settings`: strict float32, TF32 off, cuDNN autotuning on CUDA), so they
compute the same arithmetic.

Throughput is images/s over windows of steps after a warm-up; the reported number is the median over windows,
pooled over `--rounds` rounds that alternate (a) and (b) so background load hits both alike.

Then (d): the trainer's step at each precision (`bnrepro.train.PRECISIONS`; TF32 on CUDA only), timed by
`bnrepro.train.step_time`, and on CUDA also with the CUDA graph off (eager steps), with each one's speed-up over
strict float32.

    python benchmarks/bench_train.py [--device cpu|cuda|all] [--width W] [--steps N] [--data PATH]
                                     [--workers N] [--threads N] [--rounds R] [--precision-s S] [--tiny]

`--tiny` runs everything at a tiny size (VGG-16 at 1/16 width, a few steps, 256 synthetic images): a check that the
benchmark runs, on any device, in seconds; its numbers mean nothing.

Data: --data, else $BNREPRO_DATA, else ../shared/data/cifar10-jpeg.tar.gz next to the repository if present, else
synthetic CIFAR-shaped images written to a temporary image folder (so the benchmark runs anywhere).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath

import torch
import torch.nn.functional as F

from bnrepro.data import BATCHES, _image_folder_base, _synthetic, load_cifar10
from bnrepro.models import VGG
from bnrepro.train import PRECISIONS, RunConfig, device_settings, step_time, train

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCH, LR, SEED = 128, 0.1, 0
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # the usual CIFAR-10 constants


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughputs(stamps: list[float], window: int) -> list[float]:
    """Images/s of each window between consecutive clock stamps."""
    return [window * BATCH / (b - a) for a, b in zip(stamps, stamps[1:])]


# --- data --------------------------------------------------------------------------------------------------------

def resolve_data(arg: str | None, tmp: Path, synthetic: int | None = None) -> tuple[str, str]:
    """(location for bnrepro, description): --data, else (unless `synthetic` images are asked for) $BNREPRO_DATA or
    the shared archive, else synthetic images (`synthetic` of them, default 8192)."""
    root = arg or (None if synthetic else os.environ.get("BNREPRO_DATA"))
    if root:
        return root, root
    if SHARED.is_file() and not synthetic:
        return str(SHARED), str(SHARED)
    synthetic = synthetic or 8192
    folder = tmp / "synthetic"
    (train_x, train_y, test_x, test_y), *_ = _synthetic(f"synthetic:{synthetic}")
    from PIL import Image

    for split, xs, ys in (("train", train_x, train_y), ("test", test_x, test_y)):
        for i, (x, y) in enumerate(zip(xs, ys)):
            d = folder / split / CLASSES[y]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x.transpose(1, 2, 0)).save(d / f"{i:05d}.png")
    return str(folder), f"synthetic CIFAR-shaped PNGs ({synthetic} train), written to a temp folder"


def conventional_dataset(root: str, tmp: Path):
    """A torchvision dataset with per-sample ToTensor + Normalize over the same training images as bnrepro's."""
    import torchvision
    from torchvision import transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    path = Path(root).expanduser().resolve()
    if path.is_file():  # an image-folder archive: extract the training images once
        out = tmp / "extracted"
        with tarfile.open(path, "r:*") as tar:  # one streaming pass; the "data" filter refuses unsafe members
            tar.extractall(out, members=(m for m in tar if m.isfile() and "train" in PurePosixPath(m.name).parts[:2]),
                           filter="data")
        train_dir = next(d for d in [out / "train", *out.glob("*/train")] if d.is_dir())
        return torchvision.datasets.ImageFolder(str(train_dir), transform=tf)
    if (path / BATCHES).is_dir() or path.name == BATCHES:
        parent = path.parent if path.name == BATCHES else path
        return torchvision.datasets.CIFAR10(str(parent), train=True, download=False, transform=tf)
    base = _image_folder_base(path)
    if base is None:
        sys.exit(f"{path}: not an image-folder archive or directory nor a cifar-10-batches-py folder")
    return torchvision.datasets.ImageFolder(str(base / "train"), transform=tf)


# --- the two training paths -----------------------------------------------------------------------------------------

class StampedData:
    """bnrepro's Cifar10, unchanged, except that asking for the batch of a window's first step stamps the clock."""

    def __init__(self, data, warmup: int, window: int, device: torch.device):
        self.data, self.warmup, self.window, self.device = data, warmup, window, device
        self.stamps: list[float] = []

    def __getattr__(self, name):
        return getattr(self.data, name)

    def batch(self, step: int, *args, **kw):
        if step >= self.warmup and (step - self.warmup) % self.window == 0:
            sync(self.device)
            self.stamps.append(time.perf_counter())
        return self.data.batch(step, *args, **kw)


def bench_config(width: float, steps: int, precision: str = "float32") -> RunConfig:
    """The benchmarked run: VGG-16 + BatchNorm at `width`, batch 128, plain SGD, no probes and no evaluation."""
    return RunConfig(model="vgg16", norm="batch", lr=LR, steps=steps, batch_size=BATCH, seed=SEED, width=width,
                     budget="bench", data="cifar10", eval_every=10 ** 9, probe_every=10 ** 9, precision=precision)


def run_bnrepro(data, device, width, warmup, steps, window) -> list[float]:
    """Images/s per window of bnrepro.train.train (the real trainer) on device-resident data."""
    stamped = StampedData(data, warmup, window, device)
    rec = train(bench_config(width, warmup + steps + 1), stamped, device=device)
    assert rec.status == "completed", rec.summary
    return throughputs(stamped.stamps, window)


def run_conventional(dataset, device, width, warmup, steps, window, workers, train: bool = True) -> list[float]:
    """Images/s per window of a conventional DataLoader loop with the same model and SGD step; with train=False,
    of the loader alone (batches moved to the device, no model): the most the loop could reach on any device."""
    from torch.utils.data import DataLoader

    torch.manual_seed(SEED)
    if train:
        model = VGG("vgg16", norm="batch", width=width).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)

    def batches():
        while True:
            yield from loader

    it, stamps = batches(), []
    for i in range(warmup + steps + 1):
        if i >= warmup and (i - warmup) % window == 0:
            sync(device)
            stamps.append(time.perf_counter())
        if i == warmup + steps:
            break
        x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if not train:
            continue
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    del it, loader  # shut the workers down
    return throughputs(stamps, window)


# --- main -----------------------------------------------------------------------------------------------------------

def bench_device(device: torch.device, args, root: str, described: str, dataset) -> float:
    cuda = device.type == "cuda"
    width = args.width if args.width is not None else (1.0 if cuda else 1 / 8)
    steps = args.steps if args.steps is not None else (200 if cuda else 40)
    window = args.window or (20 if cuda else 10)
    steps = max(window, steps // window * window)
    warmup = args.warmup if args.warmup is not None else (20 if cuda else 5)
    data = load_cifar10(root, device=device, test_limit=1000)  # decode cached; eval (untimed) on 1000 images
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} intra-op threads"
    print(f"\n== {device} ({name}): VGG-16 + BatchNorm, width {width:g}, batch {BATCH}, plain SGD lr {LR}")
    print(f"   data: {described} -> bnrepro: {data.source}")
    print(f"   {args.rounds} round(s) x {steps} timed steps per path (windows of {window}, after {warmup} warm-up "
          f"steps); conventional DataLoader: {type(dataset).__name__}, num_workers={args.workers}, "
          f"pin_memory={cuda}", flush=True)
    ours, theirs = [], []
    for r in range(args.rounds):
        ours += run_bnrepro(data, device, width, warmup, steps, window)
        with device_settings(False, device):  # the trainer's arithmetic (and cuDNN autotuning) for both loops
            theirs += run_conventional(dataset, device, width, warmup, steps, window, args.workers)
        print(f"   round {r + 1}: bnrepro {statistics.median(ours[-steps // window:]):8.0f} img/s, "
              f"conventional {statistics.median(theirs[-steps // window:]):8.0f} img/s", flush=True)
    with device_settings(False, device):
        loader_only = run_conventional(dataset, device, width, warmup, steps, window, args.workers, train=False)
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"   (a) bnrepro trainer (bnrepro.train.train, data on device): {a:8.0f} img/s "
          f"(windows {min(ours):.0f}..{max(ours):.0f})")
    print(f"   (b) conventional torchvision DataLoader loop:              {b:8.0f} img/s "
          f"(windows {min(theirs):.0f}..{max(theirs):.0f})")
    print(f"   (c) the conventional DataLoader alone, no model:          {statistics.median(loader_only):8.0f} img/s "
          f"(the ceiling of (b) at num_workers={args.workers})")
    print(f"   ratio bnrepro / conventional: {a / b:.2f}", flush=True)
    bench_precisions(data, device, width, args.precision_s)
    del data
    if cuda:
        torch.cuda.empty_cache()
    return a / b


def bench_precisions(data, device: torch.device, width: float, seconds: float) -> None:
    """(d): the trainer's step at each precision, with the CUDA graph and (on CUDA) without."""
    cuda = device.type == "cuda"
    print(f"   (d) the trainer's step at each precision (bnrepro.train.step_time, about {seconds:g} s each):")
    base = None
    for precision in PRECISIONS:
        if precision == "tf32" and not cuda:
            print(f"       {precision:8s} skipped: TF32 is a CUDA arithmetic")
            continue
        cfg = bench_config(width, 1, precision)
        paths = [True, False] if cuda else [True]
        times = {graph: step_time(cfg, data, device=device, seconds=seconds, cuda_graph=graph) for graph in paths}
        s, _, mode = times[True]
        base = base or s
        eager = f", eager {1e3 * times[False][0]:.2f} ms (graph x{times[False][0] / s:.2f})" if cuda else ""
        print(f"       {precision:8s} {1e3 * s:8.2f} ms/step ({mode}), {BATCH / s:8.0f} img/s, x{base / s:.2f} "
              f"against float32{eager}", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "all"],
                   help="cpu, cuda, or all (cpu, then cuda if present); default cpu")
    p.add_argument("--width", type=float, default=None, help="VGG width multiplier (default 1/8 on CPU, 1 on CUDA)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per path per round (default 40 CPU, 200 CUDA)")
    p.add_argument("--window", type=int, default=None, help="steps per timed window (default 10 CPU, 20 CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 5 CPU, 20 CUDA)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of (a) then (b) (default 2)")
    p.add_argument("--data", default=None, help="CIFAR-10 location (default: $BNREPRO_DATA, the shared archive, "
                                                "else synthetic images)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="DataLoader workers of the conventional loop (default min(4, CPU count))")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--precision-s", type=float, default=3.0, help="seconds each precision's step is timed (default 3)")
    p.add_argument("--tiny", action="store_true",
                   help="a tiny size on any device (width 1/16, 4 steps, 256 synthetic images): checks that it runs")
    args = p.parse_args(argv)
    if args.tiny:
        args.width, args.steps, args.window, args.warmup, args.rounds = 1 / 16, 4, 2, 1, 1
        args.workers, args.precision_s = 0, 0.0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # bnrepro's trainer sets it on CPU; set it for both paths alike
    devices = {"cpu": ["cpu"], "cuda": ["cuda"], "all": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          f"(other processes share this machine: absolute numbers vary; compare the ratio)")
    with tempfile.TemporaryDirectory(prefix="bnrepro-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        root, described = resolve_data(args.data, tmp, 256 if args.tiny else None)
        dataset = conventional_dataset(root, tmp)
        print(f"data prepared in {time.perf_counter() - t0:.0f} s ({len(dataset)} training images for the "
              f"conventional loop)", flush=True)
        for dev in devices[args.device]:
            bench_device(torch.device(dev), args, root, described, dataset)


if __name__ == "__main__":
    main()
