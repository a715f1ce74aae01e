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
from .train import EpochEvent, TrainConfig, TrainControl, evaluate, train


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="convscope-train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="keras_mnist",
                    help=f"one of {sorted(ARCHITECTURES)} or a JSON architecture file")
    ap.add_argument("--data", default="bundled",
                    help="'bundled' (MNIST subset in assets/), a folder of IDX files, or a "
                         "folder with one sub-folder of images per class")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="folder for checkpoint.npz and model.npz")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    ap.add_argument("--eval", metavar="MODEL", help="evaluate a saved model and exit")
    ap.add_argument("--limit", type=int, help="use only the first N training images")
    args = ap.parse_args(argv)
    reuse_large_allocations()
    try:
        data = load_dataset(args.data)
    except DatasetError as exc:
        print(f"convscope-train: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        data.x_train, data.y_train = data.x_train[:args.limit], data.y_train[:args.limit]
    if args.eval:
        try:
            model, _ = load_model(args.eval)
        except ModelFileError as exc:
            print(f"convscope-train: {exc}", file=sys.stderr)
            return 2
        if model.input_shape != data.input_shape:
            print(f"convscope-train: the model expects {model.input_shape} images, the data "
                  f"has {data.input_shape}", file=sys.stderr)
            return 2
        print(model.summary_text())
        print_report(model, data)
        return 0
    try:
        spec = dict(_arch(args.arch))
        spec["input_shape"] = list(data.input_shape)
        model = build(spec, seed=args.seed)
        config = TrainConfig(args.epochs, args.batch_size, args.lr, args.optimizer,
                             args.momentum, args.weight_decay, args.seed, args.out, args.resume)
        config.validate()
    except ValueError as exc:
        print(f"convscope-train: {exc}", file=sys.stderr)
        return 2
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    print(f"data: {data.name}: {len(data.x_train)} training, {len(data.x_test)} test images "
          f"{data.input_shape}")
    print(model.summary_text())
    control = TrainControl()
    t0 = time.perf_counter()
    gen = train(model, data, config, control)
    tty = sys.stdout.isatty()
    try:
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                model = stop.value or model
                break
            if isinstance(ev, EpochEvent):
                if tty:
                    print()
                print(f"epoch {ev.epoch + 1}/{ev.epochs}: train loss {ev.train_loss:.4f} "
                      f"acc {ev.train_accuracy * 100:.2f}% | test loss {ev.test_loss:.4f} "
                      f"acc {ev.test_accuracy * 100:.2f}% | {ev.seconds:.1f} s, "
                      f"{ev.samples_per_s:,.0f} img/s", flush=True)
            elif tty or ev.batch == ev.batches - 1 or ev.batch % 50 == 0:
                frac = (ev.batch + 1) / ev.batches
                line = (f"epoch {ev.epoch + 1} [{_bar(frac)}] {ev.batch + 1}/{ev.batches} "
                        f"loss {ev.loss:.4f} | {ev.samples_per_s:,.0f} img/s | "
                        f"ETA {ev.eta_s:,.0f} s")
                print("\r" + line if tty else line, end="" if tty else "\n", flush=True)
    except KeyboardInterrupt:
        control.stop()
        print("\nstopped; the last finished epoch's checkpoint is kept", file=sys.stderr)
        return 130
    except FloatingPointError as exc:
        print(f"\nconvscope-train: {exc}", file=sys.stderr)
        return 1
    print(f"trained in {time.perf_counter() - t0:.1f} s")
    print_report(model, data)
    if args.out:
        print(f"model saved to {os.path.join(args.out, 'model.npz')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
