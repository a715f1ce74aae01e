"""``convscope.core`` is numpy + Pillow only: importing and running it never loads a GUI toolkit.

Runs in a fresh interpreter, because this test session may already have Qt loaded
by other test modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = ("PyQt6", "PySide6", "pyqtgraph")

SCRIPT = r"""
import importlib, json, pkgutil, sys
import numpy as np
import convscope.core as core
names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, "convscope.core."))
for name in names:
    importlib.import_module(name)
from convscope.core.pipeline import default_pipeline, run
from convscope.core.explain import explain, project
from convscope.core.display import map_stats, value_ranges
res = run(np.random.default_rng(0).random((6, 6, 3), dtype=np.float32), default_pipeline())
assert res.error is None and res.output.shape == (3, 3, 3), res.output.shape
explain(res, 2, 0, 1, 1)
project(res, -1, 2, 2)
value_ranges([[map_stats(m) for m in lvl.maps] for lvl in [res.input, *res.stages]])
forbidden = sys.argv[1].split(",")
print(json.dumps({
    "modules": names,
    "loaded": sorted(m for m in sys.modules if m.startswith(tuple(forbidden))),
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
}))
"""


def test_core_never_imports_a_gui_toolkit():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSTARTUP",)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(FORBIDDEN)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for expected in ("pipeline", "explain", "cli", "display", "export", "conv", "pool",
                     "image"):
        expected = f"convscope.core.{expected}"
        assert expected in report["modules"]
    assert report["loaded"] == [], f"core loaded GUI modules: {report['loaded']}"
    assert report["torch"] == [], "core must not need torch"


def test_openblas_threads_sleep_after_a_product_unless_told_otherwise():
    """convscope, imported before numpy, asks OpenBLAS's threads not to spin after each
    product (they slowed the compiled loops that follow; bench_train 0.88 -> 0.98); a
    value the user set wins, and once numpy is loaded nothing is changed."""
    import os
    import subprocess
    import sys
    code = "import os, {first}, {second}; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}

    def run(first, second, **extra):
        out = subprocess.run([sys.executable, "-c", code.format(first=first, second=second)],
                             env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    assert run("convscope", "numpy") == "4"
    assert run("numpy", "convscope") == "None"
    assert run("convscope", "numpy", OPENBLAS_THREAD_TIMEOUT="20") == "20"
