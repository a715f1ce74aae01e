"""``convscope-train``: train a CNN in numpy, or evaluate a saved model.

    convscope-train --arch keras_mnist --data bundled --epochs 3 --out runs/a
    convscope-train --eval runs/a/model.npz [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


from ..memory import reuse_large_allocations
from .data import DatasetError, load_dataset
from .model import ARCHITECTURES, ModelFileError, build, load_model
from .train import CHECKPOINT, EpochEvent, TrainConfig, TrainControl, evaluate, train


def _bar(frac: float, width: int = 28) -> str:
    n = int(round(frac * width))
    return "#" * n + "." * (width - n)


def _arch(spec: str):
    if spec in ARCHITECTURES:
        return ARCHITECTURES[spec]
    try:
        with open(spec, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--arch must be one of {sorted(ARCHITECTURES)} or a JSON file: "
                         f"{spec!r} ({exc})") from None


def print_report(model, data, out=None):
    out = sys.stdout if out is None else out
    loss, acc, conf, _ = evaluate(model, data.x_test, data.y_test)
    print(f"test: {len(data.y_test)} images, loss {loss:.4f}, accuracy {acc * 100:.2f}%",
          file=out)
    print("confusion matrix (rows: true class, columns: predicted):", file=out)
    names = data.classes
    w = max(5, max(len(str(v)) for v in conf.ravel()) + 1)
    print(" " * 6 + "".join(f"{c[:w - 1]:>{w}}" for c in names), file=out)
    for i, row in enumerate(conf):
        print(f"{names[i][:5]:>5} " + "".join(f"{v:>{w}}" for v in row), file=out)
    return acc


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("convscope")
    except Exception:  # noqa: BLE001 - running from a checkout
        return "development"


class _Output:
    """stdout that survives a closed pipe (``convscope-train ... | head -1``): once
    the reader is gone, further output is dropped and training goes on."""

    def __init__(self):
        self.closed = False

    def print(self, *args, **kwargs):
        if self.closed:
            return
        try:
            print(*args, **kwargs)
        except BrokenPipeError:
            self.closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="convscope-train",
        description="Train a CNN in numpy on MNIST (or a folder of images), or evaluate a "
                    "saved model. Examples: convscope-train --epochs 3 --out runs/a; "
                    "convscope-train --eval runs/a/model.npz",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    ap.add_argument("--arch", default="keras_mnist",
                    help=f"one of {sorted(ARCHITECTURES)} or a JSON architecture file")
    ap.add_argument("--data", default="bundled",
                    help="'bundled' (the MNIST subset shipped with ConvScope), a folder of "
                         "IDX files, or a folder with one sub-folder of images per class")
    ap.add_argument("--epochs", type=int, default=1, help="passes over the training images")
    ap.add_argument("--batch-size", type=int, default=128, help="images per step")
    ap.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                    help="update rule")
    ap.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the initial weights and the batch order")
    ap.add_argument("--out", help="folder for checkpoint.npz (after every epoch) and model.npz")
    ap.add_argument("--resume", action="store_true",
                    help="continue from OUT/checkpoint.npz (same --arch)")
    ap.add_argument("--eval", metavar="MODEL", help="evaluate a saved model and exit")
    ap.add_argument("--limit", type=int, help="use only the first N training images")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    out = _Output()
    try:
        return _main(args, out)
    except KeyboardInterrupt:
        print("\nconvscope-train: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("convscope-train: not enough memory for this model and batch size; try a "
              "smaller --batch-size or architecture", file=sys.stderr)
        return 1


def _fail(message: str, code: int = 2) -> int:
    print(f"convscope-train: {message}", file=sys.stderr)
    return code


def _main(args, out: _Output) -> int:
    reuse_large_allocations()
    if args.resume and not args.out:
        return _fail("--resume needs --out, the folder that holds checkpoint.npz")
    if args.resume and not os.path.isfile(os.path.join(args.out, CHECKPOINT)):
        return _fail(f"--resume: there is no checkpoint at "
                     f"{os.path.join(args.out, CHECKPOINT)}; run without --resume to start "
                     f"a new training")
    if args.limit is not None and args.limit < 1:
        return _fail(f"--limit must be a positive number of images, got {args.limit}")
    try:
        data = load_dataset(args.data)
    except DatasetError as exc:
        return _fail(str(exc))
    if args.limit:
        data.x_train, data.y_train = data.x_train[:args.limit], data.y_train[:args.limit]
    if args.eval:
        try:
            model, _ = load_model(args.eval)
        except ModelFileError as exc:
            return _fail(str(exc))
        problem = _incompatible(model, data)
        if problem:
            return _fail(f"cannot evaluate '{args.eval}': {problem}")
        out.print(model.summary_text())
        print_report(model, data, out=_Writer(out))
        return 0
    try:
        spec = dict(_arch(args.arch))
        spec["input_shape"] = list(data.input_shape)
        model = build(spec, seed=args.seed)
        config = TrainConfig(args.epochs, args.batch_size, args.lr, args.optimizer,
                             args.momentum, args.weight_decay, args.seed, args.out, args.resume)
        config.validate()
    except ValueError as exc:
        return _fail(str(exc))
    problem = _incompatible(model, data)
    if problem:
        return _fail(f"the architecture '{args.arch}' cannot learn this data: {problem}")
    if args.out:
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as exc:
            return _fail(f"cannot create --out '{args.out}': {exc.strerror or exc}")
    out.print(f"data: {data.name}: {len(data.x_train)} training, {len(data.x_test)} test "
              f"images {data.input_shape}")
    out.print(model.summary_text())
    control = TrainControl()
    t0 = time.perf_counter()
    tty = sys.stdout.isatty()
    try:
        gen = train(model, data, config, control)
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                model = stop.value or model
                break
            if isinstance(ev, EpochEvent):
                if tty:
                    out.print()
                out.print(f"epoch {ev.epoch + 1}/{ev.epochs}: train loss {ev.train_loss:.4f} "
                          f"acc {ev.train_accuracy * 100:.2f}% | test loss {ev.test_loss:.4f} "
                          f"acc {ev.test_accuracy * 100:.2f}% | {ev.seconds:.1f} s, "
                          f"{ev.samples_per_s:,.0f} img/s", flush=True)
            elif tty or ev.batch == ev.batches - 1 or ev.batch % 50 == 0:
                frac = (ev.batch + 1) / ev.batches
                line = (f"epoch {ev.epoch + 1} [{_bar(frac)}] {ev.batch + 1}/{ev.batches} "
                        f"loss {ev.loss:.4f} | {ev.samples_per_s:,.0f} img/s | "
                        f"ETA {ev.eta_s:,.0f} s")
                out.print("\r" + line if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        control.stop()
        print("\nstopped; the last finished epoch's checkpoint is kept", file=sys.stderr)
        return 130
    except ModelFileError as exc:  # --resume: a corrupt checkpoint or another --arch
        return _fail(f"{exc}. Start a new training without --resume, or give the --arch "
                     f"the checkpoint was made with.")
    except FloatingPointError as exc:
        out.print()
        return _fail(str(exc), 1)
    out.print(f"trained in {time.perf_counter() - t0:.1f} s")
    print_report(model, data, out=_Writer(out))
    if args.out:
        out.print(f"model saved to {os.path.join(args.out, 'model.npz')}")
    return 0


class _Writer:
    """A file-like front of :class:`_Output` for ``print(..., file=)``."""

    def __init__(self, out: _Output):
        self._out = out

    def write(self, text):
        self._out.print(text, end="")

    def flush(self):
        pass


def _incompatible(model, data) -> str | None:
    """Why ``model`` cannot be trained or evaluated on ``data`` (None: it can)."""
    if model.input_shape != data.input_shape:
        return (f"the model expects {model.input_shape} images, the data has "
                f"{data.input_shape}")
    n_out = int(model.output_shape[-1]) if model.output_shape else 0
    n_classes = len(data.classes)
    if n_out < n_classes:
        return (f"its last layer has {n_out} outputs but the data has {n_classes} classes "
                f"(labels 0..{n_classes - 1})")
    return None


if __name__ == "__main__":
    sys.exit(main())
