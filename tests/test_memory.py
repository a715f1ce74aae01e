"""Tests of core.memory's thread priority helper and conv2d's niced helper threads."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

import convscope.core.conv as conv_module
from convscope.core.memory import lower_thread_priority

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice")


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux
def test_lower_thread_priority_changes_only_the_calling_thread():
    main_before = _priority()
    seen = {}

    def worker():
        before = _priority()
        seen["applied"] = lower_thread_priority(3)
        seen["delta"] = _priority() - before

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"applied": True, "delta": min(3, 19 - main_before)}
    assert _priority() == main_before
    assert lower_thread_priority(0) is False  # nothing to do


@linux
def test_conv_helper_threads_run_niced(monkeypatch):
    """set_worker_niceness applies to the threads of a pool made after it, and a
    threaded conv2d still gives the right result on them."""
    monkeypatch.setattr(conv_module, "_executor", None)
    monkeypatch.setattr(conv_module, "_worker_niceness", 0)
    conv_module.set_worker_niceness(4)
    base = _priority()
    pool = conv_module._pool()
    try:
        got = pool.submit(_priority).result()
        assert got == min(19, base + 4)
        monkeypatch.setattr(conv_module, "THREAD_MIN_WORK", 0)
        rng = np.random.default_rng(2)
        x = rng.random((1, 3, 64, 80), dtype=np.float32)
        w = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
        y = conv_module.conv2d(x, w, groups=3, padding=1)
        ref = conv_module.conv2d_naive(x.astype(np.float64), w.astype(np.float64), groups=3,
                                       padding=1)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    finally:
        pool.shutdown(wait=True)
