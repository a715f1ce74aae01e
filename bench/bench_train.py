"""Benchmark training of the Keras MNIST convnet in ConvScope's numpy CNN against PyTorch.

Run from the project root::

    python bench/bench_train.py                  # steady-state step timing (fast)
    python bench/bench_train.py --batches 100    # more timed steps
    python bench/bench_train.py --epochs 15      # also full training epochs (target 99.2%)
    python bench/bench_train.py --no-torch       # ours only

What is timed (batch 128, Adam lr 1e-3, the architecture ``core.nn.ARCHITECTURES
['keras_mnist']``: Conv 32 3x3, ReLU, MaxPool 2, Conv 64 3x3, ReLU, MaxPool 2,
Flatten, Dropout 0.5, Dense 10; 34,826 parameters):

- one training step = gather a random batch from the (N, 1, 28, 28) float32 training
  set, forward (train mode), softmax cross-entropy, backward, optimiser step;
- ours: ``Sequential.forward/backward`` + ``Adam.step``; PyTorch (2 threads):
  ``zero_grad``, forward, ``F.cross_entropy``, ``backward``, ``Adam.step``, in NCHW
  and in channels_last (model and input converted);
- the implementations' steps are interleaved round-robin after a warm-up (see
  ``bench/_timing.py``); figures are medians. The per-layer table times each layer's
  forward and backward by calling them directly, in the order ``Sequential`` runs them
  (ReLU after max pooling: they commute and the ReLU then sees 1/4 of the values).

Target: ours >= 0.8x the images/s of PyTorch's best layout.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent
for _p in (str(_ROOT), str(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import convscope  # noqa: E402,F401 - before numpy: its process settings (convscope/__init__.py)
import numpy as np  # noqa: E402

from _timing import fmt_ms, fmt_ratio, print_table, time_interleaved  # noqa: E402
from convscope.core.memory import reuse_large_allocations  # noqa: E402
from convscope.core.nn import ARCHITECTURES, Adam, build, softmax_cross_entropy  # noqa: E402
from convscope.core.nn.data import DatasetError, load_bundled_mnist, load_idx_folder  # noqa: E402
from convscope.core.nn.train import EpochEvent, TrainConfig, train  # noqa: E402

ARCH = "keras_mnist"
BATCH = 128
LR = 1e-3
#: ours / best torch in images/s, per architecture (issue 15); others: the CNN issue's 0.8
RATIO_TARGETS = {"keras_mnist": 1.0, "lenet": 0.8}
RATIO_TARGET = 0.8
ACCURACY_TARGET = 0.992  # test accuracy after enough epochs
DEFAULT_DATA = _ROOT.parent / "shared" / "data" / "mnist"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=0,
                   help="also train this many full epochs and print per-epoch results "
                   "(default 0: step timing only)")
    p.add_argument("--batches", type=int, default=50,
                   help="timed steps per implementation (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--torch", action=argparse.BooleanOptionalAction, default=True,
                   help="compare with PyTorch if it imports (default: yes)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--data", default=str(DEFAULT_DATA),
                   help=f"folder with the four MNIST IDX files (default {DEFAULT_DATA})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default=ARCH, choices=sorted(ARCHITECTURES),
                   help=f"architecture from core.nn.ARCHITECTURES (default {ARCH}; the "
                        f"target for 'lenet', the 5x5 LeNet-style preset, is the same ratio)")
    p.add_argument("--settle", action=argparse.BooleanOptionalAction, default=True,
                   help="each timed step follows an untimed step of the same "
                        "implementation (default: yes; see bench/_timing.py)")
    a = p.parse_args(argv)
    if a.batches < 1 or a.warmup < 0 or a.epochs < 0:
        p.error("--batches must be >= 1, --warmup and --epochs >= 0")
    return a


# --------------------------------------------------------------------------- data


def load_data(folder: str):
    try:
        t0 = time.perf_counter()
        ds = load_idx_folder(folder)
        ds.name = f"MNIST ({folder})"
        return ds, time.perf_counter() - t0
    except DatasetError as exc:
        print(f"note: {exc}; using the bundled subset instead (10,000 / 2,000 images)")
        t0 = time.perf_counter()
        return load_bundled_mnist(), time.perf_counter() - t0


# ----------------------------------------------------------------------------- ours


class OurStep:
    """One training step of our model per call, on a fixed sequence of random batches."""

    def __init__(self, data, batches: list[np.ndarray], seed: int):
        from convscope.core import _jit
        _jit.warm_up()  # as core.nn.train.train does: the compiled loops loaded up front
        self.model = build(ARCHITECTURES[ARCH], seed=seed)
        self.opt = Adam(self.model.layers, lr=LR)
        self.data = data
        self.batches = batches
        self.i = 0
        self.loss = float("nan")

    def __call__(self):
        idx = self.batches[self.i % len(self.batches)]
        self.i += 1
        x, y = self.data.x_train[idx], self.data.y_train[idx]
        logits = self.model.forward(x, train=True)
        self.loss, grad, _ = softmax_cross_entropy(logits, y)
        self.model.backward(grad)
        self.opt.step()


def layer_breakdown(data, batches, seed: int, warmup: int):
    """Median ms of every step of the model's plan (a layer, or a fused max pool + ReLU
    pair), forward and backward called directly, in execution order."""
    step = OurStep(data, batches, seed)
    model, opt = step.model, step.opt
    plan = [tuple(s) for s in model._plan]
    fwd = {s: [] for s in plan}
    bwd = {s: [] for s in plan}
    extra = {"loss": [], "optimizer step": []}
    shapes = {}
    n = len(batches)
    for r in range(warmup + n):
        idx = batches[r % n]
        x = np.asarray(data.x_train[idx], np.float32)
        y = data.y_train[idx]
        rec = r >= warmup
        for s in plan:
            t0 = time.perf_counter()
            x = model._run(s, x, True)
            if rec:
                fwd[s].append(time.perf_counter() - t0)
            shapes[s] = tuple(x.shape[1:])
        t0 = time.perf_counter()
        _, g, _ = softmax_cross_entropy(x, y)
        if rec:
            extra["loss"].append(time.perf_counter() - t0)
        for pos, s in enumerate(reversed(plan)):
            t0 = time.perf_counter()
            g = model.layers[s[0]].backward(g, need_input_grad=pos != len(plan) - 1)
            if rec:
                bwd[s].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        opt.step()
        if rec:
            extra["optimizer step"].append(time.perf_counter() - t0)
    med = statistics.median
    rows = []
    for s in plan:
        name = " + ".join(type(model.layers[j]).__name__ for j in s)
        rows.append(("+".join(map(str, s)), name, str(shapes[s]), med(fwd[s]) * 1e3,
                     med(bwd[s]) * 1e3))
    for name, v in extra.items():
        rows.append(("", name, "", med(v) * 1e3, 0.0))
    return rows


# ---------------------------------------------------------------------------- torch


def torch_model(torch, our_model=None):
    """The PyTorch twin of ``ARCHITECTURES[ARCH]`` (layer for layer, same names), with
    our model's weights when given."""
    from convscope.core.nn import layers as L
    nn = torch.nn
    ours = our_model if our_model is not None else build(ARCHITECTURES[ARCH], seed=0)
    mods = []
    for layer in ours.layers:
        if isinstance(layer, L.Conv2D):
            f, c, kh, kw = layer.params["weight"].shape
            mods.append(nn.Conv2d(c, f, (kh, kw), stride=layer.stride, padding=layer.padding,
                                  dilation=layer.dilation))
        elif isinstance(layer, L.Dense):
            out, d = layer.params["weight"].shape
            mods.append(nn.Linear(d, out))
        elif isinstance(layer, L.Activation):
            mods.append({"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(layer.alpha),
                         "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh(),
                         "none": nn.Identity()}[layer.function])
        elif isinstance(layer, L.MaxPool2D):
            mods.append(nn.MaxPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, L.AvgPool2D):
            mods.append(nn.AvgPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, L.Flatten):
            mods.append(nn.Flatten())
        elif isinstance(layer, L.Dropout):
            mods.append(nn.Dropout(layer.p))
        else:
            raise SystemExit(f"bench_train: no PyTorch twin for {type(layer).__name__}")
    m = nn.Sequential(*mods)
    if our_model is not None:
        sd = {k: torch.from_numpy(np.array(v)) for k, v in our_model.state_dict().items()}
        m.load_state_dict(sd, strict=True)
    return m


class TorchStep:
    def __init__(self, torch, data, batches, seed: int, channels_last: bool):
        torch.manual_seed(seed)
        self.torch = torch
        self.F = torch.nn.functional
        self.model = torch_model(torch)
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.fmt)
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.data, self.batches, self.i = data, batches, 0

    def __call__(self):
        idx = self.batches[self.i % len(self.batches)]
        self.i += 1
        x = self.torch.from_numpy(self.data.x_train[idx]).contiguous(memory_format=self.fmt)
        y = self.torch.from_numpy(self.data.y_train[idx])
        self.opt.zero_grad(set_to_none=True)
        loss = self.F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()


def cross_check(torch, data, seed: int):
    """Our logits, loss and gradients vs PyTorch's with the same weights (eval mode)."""
    model = build(ARCHITECTURES[ARCH], seed=seed)
    x, y = data.x_train[:BATCH], data.y_train[:BATCH]
    logits = model.forward(x, train=False)
    loss, g, _ = softmax_cross_entropy(logits, y)
    model.backward(g)
    tm = torch_model(torch, model).eval()
    xt = torch.from_numpy(np.ascontiguousarray(x))
    tl = tm(xt)
    tloss = torch.nn.functional.cross_entropy(tl, torch.from_numpy(y))
    tloss.backward()
    worst = float(np.abs(logits - tl.detach().numpy()).max() / np.abs(logits).max())
    for name, p in tm.named_parameters():
        i, k = name.split(".")
        ours = model.layers[int(i)].grads[k]
        ref = p.grad.numpy()
        worst = max(worst, float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30)))
    return abs(loss - tloss.item()), worst


# -------------------------------------------------------------------------- reports


def environment(torch) -> list[tuple[str, str]]:
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        load = "-"
    rows = [("python", platform.python_version()), ("numpy", np.__version__),
            ("cpus", str(os.cpu_count())), ("load average", load)]
    if torch is not None:
        rows.append(("torch", f"{torch.__version__}, {torch.get_num_threads()} threads"))
    return rows


def run_epochs(data, epochs: int, seed: int):
    print(f"\n== Training {ARCH} for {epochs} epoch(s): batch {BATCH}, Adam lr {LR}, seed {seed}")
    print(f"   {len(data.x_train):,} training / {len(data.x_test):,} test images; "
          "seconds and images/s exclude the test evaluation")
    model = build(ARCHITECTURES[ARCH], seed=seed)
    rows, last = [], None
    header = ("epoch", "seconds", "images/s", "train loss", "train acc", "test loss", "test acc")
    widths = [len(h) for h in header]
    print("   " + "  ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    print("   " + "  ".join("-" * w for w in widths))
    for ev in train(model, data, TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR,
                                             seed=seed)):
        if isinstance(ev, EpochEvent):
            cells = (f"{ev.epoch + 1}/{ev.epochs}", f"{ev.seconds:.1f}",
                     f"{ev.samples_per_s:,.0f}", f"{ev.train_loss:.4f}",
                     f"{ev.train_accuracy * 100:.2f}%", f"{ev.test_loss:.4f}",
                     f"{ev.test_accuracy * 100:.2f}%")
            print("   " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)), flush=True)
            rows.append(ev)
            last = ev
    if last is not None:
        ok = last.test_accuracy >= ACCURACY_TARGET
        print(f"   final test accuracy {last.test_accuracy * 100:.2f}% (target "
              f"{ACCURACY_TARGET * 100:.1f}%: {'met' if ok else 'not met'}); mean epoch "
              f"{statistics.mean(e.seconds for e in rows):.1f} s")


def main(argv=None) -> int:
    args = parse_args(argv)
    global ARCH
    ARCH = args.arch
    applied = reuse_large_allocations()
    torch = None
    if args.torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("note: torch does not import; timing ours only")
            torch = None
    data, load_s = load_data(args.data)
    print(f"== bench_train: {ARCH}, batch {BATCH}, Adam lr {LR:g}")
    print_table(["setting", "value"],
                environment(torch) + [("reuse_large_allocations", str(applied)),
                                      ("data", f"{data.name}: {len(data.x_train):,} train, "
                                               f"{len(data.x_test):,} test, loaded in "
                                               f"{load_s:.1f} s")],
                aligns=["<", "<"], indent="   ")

    rng = np.random.default_rng(args.seed)
    n = len(data.x_train)
    batches = [rng.choice(n, BATCH, replace=False) for _ in range(args.batches)]

    if torch is not None:
        dloss, rel = cross_check(torch, data, args.seed)
        print(f"\n   cross-check with PyTorch (same weights, eval mode, one batch): |loss "
              f"difference| {dloss:.2e}, max relative difference of logits and gradients "
              f"{rel:.2e}{'  WARNING' if rel > 1e-4 else ''}")

    # --- steady-state steps, interleaved
    fns = {"ours": OurStep(data, batches, args.seed)}
    if torch is not None:
        fns["torch NCHW"] = TorchStep(torch, data, batches, args.seed, channels_last=False)
        fns["torch channels_last"] = TorchStep(torch, data, batches, args.seed,
                                               channels_last=True)
    for _ in range(args.warmup):
        for fn in fns.values():
            fn()
    timings = time_interleaved(fns, repeat=args.batches, budget_s=600.0, settle=args.settle)
    print(f"\n== Training step (forward + backward + Adam step), {args.batches} steps each after "
          f"{args.warmup} warm-up, interleaved; median")
    best_torch = None
    if torch is not None:
        best_torch = min((k for k in fns if k != "ours"), key=lambda k: timings[k].median_ms)
    rows = []
    for name, t in timings.items():
        ips = BATCH / (t.median_ms / 1e3)
        ratio = (timings[best_torch].median_ms / t.median_ms) if best_torch else None
        rows.append([name, fmt_ms(t.median_ms), fmt_ms(t.min_ms), f"{ips:,.0f}",
                     f"{n / ips:.1f}", fmt_ratio(ratio)])
    print_table(["implementation", "median ms", "min ms", "images/s", "s/epoch*",
                 "img/s vs best torch"], rows, indent="   ")
    print(f"   * {n:,} training images at the median step rate (no evaluation, no shuffling)")
    if best_torch:
        ratio = timings[best_torch].median_ms / timings["ours"].median_ms
        target = RATIO_TARGETS.get(args.arch, RATIO_TARGET)
        print(f"   ours / best torch ({best_torch}) in images/s: {ratio:.2f} (target >= "
              f"{target}: {'met' if ratio >= target else 'not met'})")

    # --- per-layer breakdown
    rows = layer_breakdown(data, batches, args.seed, args.warmup)
    total = sum(r[3] + r[4] for r in rows)
    print(f"\n== Our step per layer (each forward/backward called directly, execution order, "
          f"median of {args.batches})")
    table = []
    for j, name, shape, f, b in rows:
        table.append([str(j), name, shape, fmt_ms(f), fmt_ms(b) if b else "-", fmt_ms(f + b),
                      f"{100 * (f + b) / total:.0f}%"])
    table.append(["", "sum of medians", "", fmt_ms(sum(r[3] for r in rows)),
                  fmt_ms(sum(r[4] for r in rows)), fmt_ms(total), "100%"])
    print_table(["#", "layer", "output as run", "fwd ms", "bwd ms", "total ms", "share"], table,
                aligns=[">", "<", "<", ">", ">", ">", ">"], indent="   ")

    if args.epochs:
        run_epochs(data, args.epochs, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
