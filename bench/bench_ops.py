"""Benchmark ConvScope's conv2d and pool2d against scipy, OpenCV and PyTorch.

Run from the project root::

    python bench/bench_ops.py                    # full grid (a few minutes)
    python bench/bench_ops.py --quick            # 512x512 and 1920x1080, K 3 and 7, 3 repeats
    python bench/bench_ops.py --methods          # also time direct / fft / gemm per case
    python bench/bench_ops.py --sizes 512,1080p --repeat 5 --json out/bench.json

See bench/README.md for what each column means and for the project's targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
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

from _timing import (StreamTable, fmt_ms, fmt_ratio, geomean, print_table,  # noqa: E402
                     time_interleaved)
from convscope.core import _jit  # noqa: E402
from convscope.core import conv as core_conv  # noqa: E402
from convscope.core import pool as core_pool  # noqa: E402
from convscope.core.memory import reuse_large_allocations  # noqa: E402

# Optional references: each is skipped (with a note) if it does not import.
try:
    import scipy
    from scipy import ndimage
except ImportError:  # pragma: no cover - depends on the environment
    scipy = ndimage = None
try:
    import cv2
except ImportError:  # pragma: no cover
    cv2 = None
try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = F = None

TOL = 1e-3
CONV_TARGET = 1.0  # geometric mean of ours/torch over the conv grid
PIPELINE_TARGET_MS = 40.0  # 3x3 conv + ReLU + 2x2 max pool on 1920x1080 RGB
SIZE_ALIASES = {"1080p": (1080, 1920), "720p": (720, 1280), "4k": (2160, 3840)}
OUR_METHODS = ("direct", "fft", "gemm")
SEPARABLE_KERNELS = (5, 7, 15)
POOL_CASES = ((2, 2, "max"), (2, 2, "avg"), (3, 2, "max"), (3, 2, "avg"))
POOL_CV2_TARGET = 1.0   # geomean ours / OpenCV over the pooling grid (issue 15)


# ------------------------------------------------------------------------ options


def parse_size(text: str) -> tuple[int, int]:
    """'512' -> (512, 512); '1080p' -> (1080, 1920); '1920x1080' (W x H) -> (1080, 1920)."""
    t = text.strip().lower()
    if t in SIZE_ALIASES:
        return SIZE_ALIASES[t]
    if "x" in t:
        w, h = t.split("x")
        return int(h), int(w)
    n = int(t)
    return n, n


def size_label(hw) -> str:
    h, w = hw
    return f"{w}x{h}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="512x512 and 1920x1080 only, K 3 and 7, 3 repeats (< ~60 s)")
    p.add_argument("--sizes", help="comma-separated: 512, 1080p, 4096 or WxH such as "
                   "1920x1080 (default 512,1080p,4096)")
    p.add_argument("--kernels", help="comma-separated odd kernel sizes (default 3,5,7,15)")
    p.add_argument("--repeat", type=int, help="timed calls per implementation (default 7, "
                   "3 with --quick; at most 3 for images of 16 Mpx and more)")
    p.add_argument("--budget", type=float, default=8.0,
                   help="max seconds of timed calls per implementation and case; slow "
                   "references get fewer repeats (at least 1 after the warm-up; default 8)")
    p.add_argument("--methods", action="store_true",
                   help="also time each of our conv methods (direct, fft, gemm)")
    p.add_argument("--skip-slow-scipy", action="store_true",
                   help="skip the scipy conv reference when it would take seconds per call "
                   "(images of 16 Mpx and more with K >= 7)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="conv,pool,pipeline",
                   help="comma-separated parts to run: conv, pool, pipeline (default: all)")
    a = p.parse_args(argv)
    a.only = {t.strip() for t in a.only.split(",") if t.strip()}
    if not a.only <= {"conv", "pool", "pipeline"}:
        p.error(f"--only takes conv, pool, pipeline; got {sorted(a.only)}")
    if a.sizes:
        a.sizes = [parse_size(s) for s in a.sizes.split(",") if s.strip()]
    else:
        a.sizes = [(512, 512), (1080, 1920)] if a.quick else [(512, 512), (1080, 1920),
                                                              (4096, 4096)]
    if a.kernels:
        a.kernels = [int(k) for k in a.kernels.split(",") if k.strip()]
    else:
        a.kernels = [3, 7] if a.quick else [3, 5, 7, 15]
    if any(k % 2 == 0 or k < 1 for k in a.kernels):
        p.error("kernel sizes must be odd (OpenCV's anchor for even kernels differs)")
    if a.repeat is None:
        a.repeat = 3 if a.quick else 7
    if a.repeat < 1:
        p.error("--repeat must be at least 1")
    return a


def repeats_for(hw, repeat: int) -> int:
    return min(repeat, 3) if hw[0] * hw[1] >= 16_000_000 else repeat


# -------------------------------------------------------------------- environment


def environment(malloc_applied: bool) -> dict:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numpy": np.__version__,
        "scipy": getattr(scipy, "__version__", None),
        "torch": getattr(torch, "__version__", None),
        "cv2": getattr(cv2, "__version__", None),
        "reuse_large_allocations": malloc_applied,
        "numba": getattr(_jit.numba, "__version__", None),
        "jit_enabled": _jit.enabled(),
        "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    env["cpu_model"] = line.split(":", 1)[1].strip()
                    break
            fh.seek(0)
            flags = next((ln for ln in fh if ln.startswith("flags")), "")
            env["avx512f"] = " avx512f " in f" {flags} "
    except OSError:
        pass
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    if cv2 is not None:
        env["cv2_threads"] = cv2.getNumThreads()
        env["cv2_optimized"] = bool(cv2.useOptimized())
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        env["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - purely informative
        pass
    try:
        from threadpoolctl import threadpool_info
        env["threadpools"] = [
            {k: d.get(k) for k in ("user_api", "internal_api", "num_threads", "version",
                                   "architecture", "filepath")}
            for d in threadpool_info()]
    except ImportError:
        env["threadpools"] = None
    return env


def print_environment(env: dict) -> None:
    print("Environment")
    keys = ["python", "platform", "cpu_model", "avx512f", "cpu_count", "cpus_usable", "numpy",
            "numpy_blas", "numba", "jit_enabled", "scipy", "torch", "torch_threads",
            "torch_mkldnn", "cv2", "cv2_threads", "cv2_optimized", "reuse_large_allocations"]
    for k in keys:
        if k in env:
            print(f"  {k:<24} {env[k]}")
    if env.get("threadpools") is None:
        print(f"  {'threadpools':<24} (threadpoolctl not installed)")
    else:
        for d in env["threadpools"]:
            print(f"  {'threadpool':<24} {d['user_api']}/{d['internal_api']} "
                  f"{d.get('version')} threads={d['num_threads']} "
                  f"{d.get('architecture') or ''} {Path(d.get('filepath') or '').name}")
    print()


# ---------------------------------------------------------------------------- data


def make_image(hw, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((hw[0], hw[1], 3), dtype=np.float32)


def make_kernel(k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000 + k)
    return (rng.standard_normal((3, 1, k, k)) / k).astype(np.float32)


def make_gaussian(k: int, seed: int) -> np.ndarray:
    """A K x K Gaussian blur (sigma = K/6) per channel: separable, like the blur presets."""
    g = np.exp(-0.5 * ((np.arange(k) - (k - 1) / 2) / (k / 6)) ** 2)
    g2 = np.outer(g, g)
    return np.repeat((g2 / g2.sum())[None, None], 3, axis=0).astype(np.float32)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _timed_call(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, {"ours": time.perf_counter() - t0}


def check_outputs(ours, outputs, warmed, what, warnings) -> dict:
    """Compare ours (HWC) with each reference's HWC output; record the call times."""
    diffs = {}
    for name, produce in outputs.items():
        t0 = time.perf_counter()
        ref = produce()
        warmed[name] = time.perf_counter() - t0
        d = max_abs_diff(ours, ref)
        diffs[name] = d
        if not d < TOL:
            warnings.append(f"WARNING {what}: ours vs {name}: max abs diff {d:.3g} >= {TOL:g}")
    return diffs


def torch_view(img: np.ndarray):
    """Zero-copy channels_last (1, 3, H, W) view of the HWC image."""
    return torch.from_numpy(img)[None].permute(0, 3, 1, 2)


def torch_to_hwc(yt) -> np.ndarray:
    return yt[0].permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------- conv


def conv_case(img, planes, hw, k, args, warnings, notes, kernel=make_kernel):
    """Time one (size, K) case; return its JSON record."""
    h, w = hw
    wgt = kernel(k, args.seed)
    x = img.transpose(2, 0, 1)[None]  # channels-last (1, 3, H, W) view
    method = core_conv.auto_method(x, wgt, groups=3)
    label = size_label(hw)

    fns = {"ours": lambda: core_conv.conv2d(x, wgt, padding="same", groups=3)}
    outputs = {}  # name -> callable producing an HWC result for checking

    if ndimage is not None:
        slow = h * w >= 16_000_000 and k >= 7
        if slow and args.skip_slow_scipy:
            notes.append(f"conv {label} K={k}: scipy skipped (--skip-slow-scipy)")
        else:
            sc_out = [np.empty((h, w), np.float32) for _ in range(3)]

            def run_scipy():
                for c in range(3):
                    ndimage.correlate(planes[c], wgt[c, 0], output=sc_out[c], mode="constant",
                                      cval=0.0)
                return sc_out

            fns["scipy"] = run_scipy
            outputs["scipy"] = lambda: np.stack(run_scipy(), axis=-1)
    if cv2 is not None:
        cv_out = [np.empty((h, w), np.float32) for _ in range(3)]
        kc = [np.ascontiguousarray(wgt[c, 0]) for c in range(3)]

        def run_cv2():
            for c in range(3):
                cv2.filter2D(planes[c], -1, kc[c], dst=cv_out[c], anchor=(-1, -1), delta=0,
                             borderType=cv2.BORDER_CONSTANT)
            return cv_out

        fns["cv2"] = run_cv2
        outputs["cv2"] = lambda: np.stack(run_cv2(), axis=-1)
    if torch is not None:
        xt = torch_view(img)
        wt = torch.from_numpy(wgt)

        def run_torch():
            with torch.no_grad():
                return F.conv2d(xt, wt, padding="same", groups=3)

        fns["torch"] = run_torch
        outputs["torch"] = lambda: torch_to_hwc(run_torch())
    if args.methods:
        for m in OUR_METHODS:
            fns[f"ours:{m}"] = (lambda m=m: core_conv.conv2d(x, wgt, padding="same", groups=3,
                                                             method=m))
            outputs[f"ours:{m}"] = (lambda m=m: core_conv.conv2d(
                x, wgt, padding="same", groups=3, method=m)[0].transpose(1, 2, 0))
        if _jit.enabled():  # the direct method without the compiled loop, for comparison
            def numpy_direct():
                _jit.set_enabled(False)
                try:
                    return core_conv.conv2d(x, wgt, padding="same", groups=3, method="direct")
                finally:
                    _jit.set_enabled(True)

            fns["ours:numpy"] = numpy_direct
            outputs["ours:numpy"] = lambda: numpy_direct()[0].transpose(1, 2, 0)

    # correctness, once per case: ours against every reference (and each method);
    # these calls serve as the warm-up calls of the timing
    ours, warmed = _timed_call(fns["ours"])
    ours = ours[0].transpose(1, 2, 0)
    diffs = check_outputs(ours, outputs, warmed, f"conv {label} K={k}", warnings)
    del ours

    # Our forced methods are timed in a round of their own, after the comparison with
    # the references: the gemm method's OpenBLAS threads keep spinning long after a
    # call and slowed whatever ran next (torch's 512x512 3x3 conv went from 0.6 to 8 ms).
    mine = [n for n in fns if n.startswith("ours:")]
    refs = {n: f for n, f in fns.items() if n not in mine}
    t = time_interleaved(refs, repeats_for(hw, args.repeat), args.budget, warmed)
    if mine:
        t.update(time_interleaved({n: fns[n] for n in mine}, repeats_for(hw, args.repeat),
                                  args.budget, warmed))
    rec = {"size": label, "h": h, "w": w, "K": k, "method": method,
           "timings": {n: tm.as_dict() for n, tm in t.items()}, "max_abs_diff": diffs}
    ours_ms = t["ours"].median_ms
    for ref in ("scipy", "cv2", "torch"):
        rec[f"{ref}_ms"] = t[ref].median_ms if ref in t else None
        rec[f"ratio_{ref}"] = ours_ms / t[ref].median_ms if ref in t else None
    rec["ours_ms"] = ours_ms
    if args.methods:
        ms = {m: t[f"ours:{m}"].median_ms for m in OUR_METHODS}
        best = min(ms, key=ms.get)
        rec["methods_ms"] = ms
        rec["numpy_direct_ms"] = t["ours:numpy"].median_ms if "ours:numpy" in t else None
        rec["fastest_method"] = best
        rec["auto_vs_fastest"] = ms[method] / ms[best]
    for name, tm in t.items():
        if tm.n < 3:
            notes.append(f"conv {label} K={k}: {name} timed {tm.n}x after warm-up "
                         f"(warm-up {fmt_ms(tm.warmup * 1e3)} ms)")
    return rec


def conv_columns(methods: bool):
    cols = [("size", 9, "<"), ("K", 2, ">"), ("ours ms", 8, ">"), ("method", 6, "<"),
            ("scipy ms", 8, ">"), ("/scipy", 6, ">"), ("cv2 ms", 7, ">"), ("/cv2", 6, ">"),
            ("torch ms", 8, ">"), ("/torch", 6, ">")]
    if methods:
        cols += [("direct", 7, ">"), ("fft", 7, ">"), ("gemm", 7, ">"), ("fastest", 7, "<"),
                 ("auto/best", 9, ">"), ("numpy", 7, ">")]
    return cols


def conv_row(rec, methods: bool):
    cells = [rec["size"], rec["K"], fmt_ms(rec["ours_ms"]), rec["method"],
             fmt_ms(rec["scipy_ms"]), fmt_ratio(rec["ratio_scipy"]), fmt_ms(rec["cv2_ms"]),
             fmt_ratio(rec["ratio_cv2"]), fmt_ms(rec["torch_ms"]), fmt_ratio(rec["ratio_torch"])]
    if methods:
        ms = rec["methods_ms"]
        cells += [fmt_ms(ms["direct"]), fmt_ms(ms["fft"]), fmt_ms(ms["gemm"]),
                  rec["fastest_method"], fmt_ratio(rec["auto_vs_fastest"]),
                  fmt_ms(rec.get("numpy_direct_ms"))]
    return cells


def run_conv(images, args, warnings, notes):
    print("Per-channel convolution, float32 RGB, stride 1, 'same' zero padding "
          "(times: median ms; ratios: ours / reference, < 1 means ours is faster)")
    table = StreamTable(conv_columns(args.methods))
    table.header()
    records = []
    for hw in args.sizes:
        img, planes = images[hw]
        for k in args.kernels:
            rec = conv_case(img, planes, hw, k, args, warnings, notes)
            records.append(rec)
            table.row(conv_row(rec, args.methods))
    print()
    return records


def run_separable(images, args, warnings, notes):
    """For information (not in the target): Gaussian blurs, which are separable; ours
    then runs 1-D passes, the references run their general 2-D convolution."""
    hw = SIZE_ALIASES["1080p"] if SIZE_ALIASES["1080p"] in images else next(iter(images))
    print(f"Separable kernels, for information (not part of the target): K x K Gaussian "
          f"blur per channel, {size_label(hw)}, otherwise as above")
    table = StreamTable(conv_columns(False))
    table.header()
    records = []
    img, planes = images[hw]
    for k in SEPARABLE_KERNELS:
        rec = conv_case(img, planes, hw, k, args, warnings, notes, kernel=make_gaussian)
        records.append(rec)
        table.row(conv_row(rec, False))
    print(f"  geomean ours/torch: {fmt_ratio(geomean(r['ratio_torch'] for r in records))}\n")
    return records


def conv_summary(records) -> dict:
    summary = {"all": geomean(r["ratio_torch"] for r in records), "per_size": {}}
    for label in dict.fromkeys(r["size"] for r in records):
        summary["per_size"][label] = geomean(r["ratio_torch"] for r in records
                                             if r["size"] == label)
    for ref in ("scipy", "cv2"):
        summary[f"all_{ref}"] = geomean(r[f"ratio_{ref}"] for r in records)
    return summary


def print_conv_summary(summary, records, methods: bool) -> None:
    print("Geometric mean of ours/torch over the conv grid (project target <= "
          f"{CONV_TARGET:g}):")
    rows = [[label, fmt_ratio(v)] for label, v in summary["per_size"].items()]
    all_ = summary["all"]
    verdict = "-" if not math.isfinite(all_) else ("met" if all_ <= CONV_TARGET else "NOT met")
    rows.append(["whole grid", f"{fmt_ratio(all_)}  (target {verdict})"])
    print_table(["size", "geomean ours/torch"], rows, ["<", "<"], indent="  ")
    print(f"  (for information: geomean ours/scipy {fmt_ratio(summary['all_scipy'])}, "
          f"ours/cv2 {fmt_ratio(summary['all_cv2'])})")
    if methods:
        wrong = [r for r in records if r["fastest_method"] != r["method"]]
        if wrong:
            print("  auto did not pick the fastest of our methods in:")
            for r in wrong:
                ms = r["methods_ms"]
                print(f"    {r['size']} K={r['K']}: auto={r['method']} "
                      f"{fmt_ms(ms[r['method']])} ms, fastest={r['fastest_method']} "
                      f"{fmt_ms(ms[r['fastest_method']])} ms "
                      f"(x{r['auto_vs_fastest']:.2f})")
        else:
            print("  auto picked the fastest of our methods in every case.")
    print()


# ---------------------------------------------------------------------------- pool


def pool_case(img, planes, hw, k, s, mode, args, warnings, notes):
    h, w = hw
    label = size_label(hw)
    x = img.transpose(2, 0, 1)[None]
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    op = f"{mode} {k}x{k}/{s}"
    fns = {"ours": lambda: core_pool.pool2d(x, k, s, mode=mode)}
    outputs = {}

    if ndimage is not None:
        filt = ndimage.maximum_filter if mode == "max" else ndimage.uniform_filter
        sc_out = [np.empty((h, w), np.float32) for _ in range(3)]
        # a size-k filter at index i covers [i - k//2, i - k//2 + k - 1]
        o = k // 2
        sc_sl = (slice(o, o + s * (ho - 1) + 1, s), slice(o, o + s * (wo - 1) + 1, s))

        def run_scipy():
            res = []
            for c in range(3):
                filt(planes[c], size=k, output=sc_out[c], mode="constant", cval=0.0)
                res.append(sc_out[c][sc_sl])
            return res

        fns["scipy"] = run_scipy
        outputs["scipy"] = lambda: np.stack(run_scipy(), axis=-1)
    if cv2 is not None:
        # window [i, i+k) with anchor (0, 0), then keep every s-th row and column
        cv_out = np.empty_like(img)
        cv_sl = (slice(0, s * (ho - 1) + 1, s), slice(0, s * (wo - 1) + 1, s))
        if mode == "max":
            kern = np.ones((k, k), np.uint8)

            def run_cv2():
                cv2.dilate(img, kern, dst=cv_out, anchor=(0, 0))
                return cv_out[cv_sl]
        elif k == 2 and s == 2 and h % 2 == 0 and w % 2 == 0:
            rs_out = np.empty((ho, wo, 3), np.float32)

            def run_cv2():
                return cv2.resize(img, (wo, ho), dst=rs_out, interpolation=cv2.INTER_AREA)
        else:
            def run_cv2():
                cv2.blur(img, (k, k), dst=cv_out, anchor=(0, 0),
                         borderType=cv2.BORDER_CONSTANT)
                return cv_out[cv_sl]

        fns["cv2"] = run_cv2
        outputs["cv2"] = run_cv2
    if torch is not None:
        xt = torch_view(img)
        tfn = F.max_pool2d if mode == "max" else F.avg_pool2d

        def run_torch():
            with torch.no_grad():
                return tfn(xt, k, s)

        fns["torch"] = run_torch
        outputs["torch"] = lambda: torch_to_hwc(run_torch())

    ours, warmed = _timed_call(fns["ours"])
    ours = ours[0].transpose(1, 2, 0)
    diffs = check_outputs(ours, outputs, warmed, f"pool {label} {op}", warnings)
    del ours

    t = time_interleaved(fns, repeats_for(hw, args.repeat), args.budget, warmed)
    rec = {"size": label, "h": h, "w": w, "op": op, "mode": mode, "kernel": k, "stride": s,
           "timings": {n: tm.as_dict() for n, tm in t.items()}, "max_abs_diff": diffs,
           "ours_ms": t["ours"].median_ms}
    for ref in ("scipy", "cv2", "torch"):
        rec[f"{ref}_ms"] = t[ref].median_ms if ref in t else None
        rec[f"ratio_{ref}"] = rec["ours_ms"] / t[ref].median_ms if ref in t else None
    for name, tm in t.items():
        if tm.n < 3:
            notes.append(f"pool {label} {op}: {name} timed {tm.n}x after warm-up")
    return rec


def run_pool(images, args, warnings, notes):
    print("Pooling, float32 RGB, no padding (times: median ms; ratios: ours / reference)")
    table = StreamTable([("size", 9, "<"), ("op", 10, "<"), ("ours ms", 8, ">"),
                         ("scipy ms", 8, ">"), ("/scipy", 6, ">"), ("cv2 ms", 7, ">"),
                         ("/cv2", 6, ">"), ("torch ms", 8, ">"), ("/torch", 6, ">")])
    table.header()
    records = []
    for hw in args.sizes:
        img, planes = images[hw]
        for k, s, mode in POOL_CASES:
            rec = pool_case(img, planes, hw, k, s, mode, args, warnings, notes)
            records.append(rec)
            table.row([rec["size"], rec["op"], fmt_ms(rec["ours_ms"]), fmt_ms(rec["scipy_ms"]),
                       fmt_ratio(rec["ratio_scipy"]), fmt_ms(rec["cv2_ms"]),
                       fmt_ratio(rec["ratio_cv2"]), fmt_ms(rec["torch_ms"]),
                       fmt_ratio(rec["ratio_torch"])])
    gm = geomean(r["ratio_torch"] for r in records)
    gm_cv2 = geomean(r["ratio_cv2"] for r in records)
    print(f"  geomean ours/cv2 over the pooling grid: {fmt_ratio(gm_cv2)} (target <= "
          f"{POOL_CV2_TARGET:g}: {'met' if gm_cv2 is not None and gm_cv2 <= POOL_CV2_TARGET else 'not met'}"
          f"); OpenCV: max = cv2.dilate + every s-th row/column (a view), avg 2x2/2 = "
          f"cv2.resize INTER_AREA, avg 3x3/2 = cv2.blur + every s-th row/column")
    print(f"  geomean ours/torch over the pooling grid: {fmt_ratio(gm)} (for information)")
    print()
    return records, gm, gm_cv2


def run_pool_backward(images, args, warnings, notes):
    """pool2d_backward against PyTorch's backward kernels (max: given the forward's
    indices, as autograd calls it; avg), float32 RGB channels-last."""
    print("Pooling backward, float32 RGB (times: median ms; ours gets the forward's "
          "output, torch its indices)")
    table = StreamTable([("size", 9, "<"), ("op", 10, "<"), ("ours ms", 8, ">"),
                         ("torch ms", 8, ">"), ("/torch", 6, ">")])
    table.header()
    records = []
    for hw in args.sizes:
        img, _ = images[hw]
        x = img.transpose(2, 0, 1)[None]
        for k, s, mode in POOL_CASES:
            y = core_pool.pool2d(x, k, s, mode=mode)
            g = np.random.default_rng(1).random(y.shape, dtype=np.float32)
            g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
            fns = {"ours": lambda: core_pool.pool2d_backward(g, x, k, s, mode=mode, output=y)}
            if torch is not None:
                xt = torch_view(img)
                gt = torch.from_numpy(np.ascontiguousarray(g.transpose(0, 2, 3, 1))
                                      ).permute(0, 3, 1, 2)
                if mode == "max":
                    _, idx = F.max_pool2d(xt, k, s, return_indices=True)

                    def run_torch():
                        return torch.ops.aten.max_pool2d_with_indices_backward(
                            gt, xt, [k, k], [s, s], [0, 0], [1, 1], False, idx)
                else:
                    def run_torch():
                        return torch.ops.aten.avg_pool2d_backward(
                            gt, xt, [k, k], [s, s], [0, 0], False, True, None)
                fns["torch"] = run_torch
                ref = run_torch().permute(0, 2, 3, 1).numpy()
                got = fns["ours"]()[0].transpose(1, 2, 0)
                diff = float(np.abs(got - ref[0]).max())
                if diff > TOL:
                    warnings.append(f"pool backward {size_label(hw)} {mode} {k}x{k}/{s}: max "
                                    f"abs diff {diff:g}")
            t = time_interleaved(fns, repeats_for(hw, args.repeat), args.budget, None)
            rec = {"size": size_label(hw), "op": f"{mode} {k}x{k}/{s}",
                   "ours_ms": t["ours"].median_ms,
                   "torch_ms": t["torch"].median_ms if "torch" in t else None}
            rec["ratio_torch"] = rec["ours_ms"] / rec["torch_ms"] if rec["torch_ms"] else None
            records.append(rec)
            table.row([rec["size"], rec["op"], fmt_ms(rec["ours_ms"]), fmt_ms(rec["torch_ms"]),
                       fmt_ratio(rec["ratio_torch"])])
    gm = geomean(r["ratio_torch"] for r in records)
    print(f"  geomean ours/torch, pooling backward: {fmt_ratio(gm)} (target < 1)")
    print()
    return records, gm


# ------------------------------------------------------------------------ pipeline


def _find_pipeline():
    """core.pipeline's run function and default pipeline, if that module exists."""
    try:
        import importlib
        mod = importlib.import_module("convscope.core.pipeline")
    except ImportError:
        return None, None, "core.pipeline not found"
    fn = getattr(mod, "run", None)
    default = getattr(mod, "default_pipeline", None)
    if not callable(fn) or not callable(default):
        return None, None, "core.pipeline has no run/default_pipeline"
    return fn, default, None


EDGE3 = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32)


def run_pipeline(args, warnings, notes):
    hw = (1080, 1920)
    img = make_image(hw, args.seed)
    x = img.transpose(2, 0, 1)[None]
    # the default pipeline's kernel (3x3 outline) on every channel; its values do not
    # change the cost, but let the ops be checked against core.pipeline's output
    wgt = np.repeat(EDGE3[None, None], 3, axis=0)
    print("Default pipeline: 3x3 per-channel conv ('same') -> ReLU -> 2x2/2 max pool, "
          f"1920x1080 RGB (target < {PIPELINE_TARGET_MS:g} ms)")

    def ops():
        y = core_conv.conv2d(x, wgt, padding="same", groups=3)
        np.maximum(y, 0, out=y)
        return core_pool.pool2d(y, 2, 2, mode="max")

    def ops_pool_first():
        # max pooling and ReLU commute: relu(maxpool(y)) == maxpool(relu(y))
        p = core_pool.pool2d(core_conv.conv2d(x, wgt, padding="same", groups=3), 2, 2,
                             mode="max")
        np.maximum(p, 0, out=p)
        return p

    fns = {"ops": ops, "ops, ReLU after pool": ops_pool_first}
    labels = {"ops": "core.conv.conv2d + np.maximum(out=) + core.pool.pool2d on the HWC view",
              "ops, ReLU after pool": "same ops, ReLU applied after the pool (equivalent)"}
    ref = ops()[0]
    d = max_abs_diff(ref, ops_pool_first()[0])
    if not d < TOL:
        warnings.append(f"WARNING pipeline: ReLU-after-pool variant differs by {d:.3g}")

    stage_secs: list[list[float]] = []
    stage_names: list[str] = []
    pipe_run, pipe_default, why = _find_pipeline()
    if pipe_run is not None:
        try:
            pipe = pipe_default()
            res = pipe_run(img, pipe)
            if res.error is not None:
                raise RuntimeError(str(res.error))
            d = max_abs_diff(ref, res.output.maps)
            if not d < TOL:
                warnings.append(f"WARNING pipeline: ops vs core.pipeline.run: max abs diff "
                                f"{d:.3g}")
            stage_names = [st.name for st in res.stages]

            def run_core_pipeline():
                r = pipe_run(img, pipe)
                stage_secs.append([st.seconds for st in r.stages])
                return r

            fns["core.pipeline.run"] = run_core_pipeline
            labels["core.pipeline.run"] = "core.pipeline.run(img_hwc, default_pipeline())"
        except Exception as e:  # noqa: BLE001 - the module is work in progress
            notes.append(f"pipeline: core.pipeline.run(img, default_pipeline()) failed: "
                         f"{type(e).__name__}: {e}")
    else:
        notes.append(f"pipeline: {why}; only the ops were timed")
    if torch is not None:
        xt = torch_view(img)
        wt = torch.from_numpy(wgt)

        def torch_pipe():
            with torch.no_grad():
                return F.max_pool2d(F.relu(F.conv2d(xt, wt, padding="same", groups=3)), 2, 2)

        fns["torch"] = torch_pipe
        labels["torch"] = "torch conv2d + relu + max_pool2d, channels_last (reference)"
        d = max_abs_diff(ref.transpose(1, 2, 0), torch_to_hwc(torch_pipe()))
        if not d < TOL:
            warnings.append(f"WARNING pipeline: ops vs torch: max abs diff {d:.3g}")

    t = time_interleaved(fns, max(args.repeat, 3 if args.quick else 7), args.budget)
    rows, rec = [], {}
    for name, tm in t.items():
        met = "" if name == "torch" else (
            "met" if tm.median_ms < PIPELINE_TARGET_MS else "NOT met")
        rows.append([name, fmt_ms(tm.median_ms), fmt_ms(tm.min_ms), tm.n, met, labels[name]])
        rec[name] = {**tm.as_dict(), "what": labels[name]}
    print_table(["variant", "median ms", "min ms", "n", "target", "what"], rows,
                ["<", ">", ">", ">", "<", "<"], indent="  ")
    if stage_secs:
        per_stage = np.median(np.array(stage_secs[1:] or stage_secs), axis=0) * 1e3
        rec["core.pipeline.run"]["stages_ms"] = dict(zip(stage_names, per_stage.tolist()))
        print("  core.pipeline.run, median ms per stage (its own StageResult.seconds):")
        print_table(["stage", "ms"], [[n, fmt_ms(v)] for n, v in zip(stage_names, per_stage)],
                    indent="    ")
    print()
    return rec


# ---------------------------------------------------------------------------- main


def main(argv=None) -> int:
    args = parse_args(argv)
    applied = reuse_large_allocations()  # process-wide: applies to the references too
    try:  # as the app does at start: the compiled loops loaded before the first call
        from convscope.core import _jit
        _jit.warm_up()
    except ImportError:
        pass
    if torch is not None:
        torch.set_num_threads(2)
    t_start = time.perf_counter()
    env = environment(applied)
    print_environment(env)
    missing = [n for n, m in (("scipy", ndimage), ("cv2", cv2), ("torch", torch)) if m is None]
    if missing:
        print(f"note: not installed, columns left empty: {', '.join(missing)}\n")

    images = {}
    for hw in args.sizes:
        img = make_image(hw, args.seed)
        planes = [np.ascontiguousarray(img[..., c]) for c in range(3)]
        images[hw] = (img, planes)

    warnings: list[str] = []
    notes: list[str] = []
    conv_records, summary, sep_records = [], None, []
    if "conv" in args.only:
        conv_records = run_conv(images, args, warnings, notes)
        summary = conv_summary(conv_records)
        print_conv_summary(summary, conv_records, args.methods)
        sep_records = run_separable(images, args, warnings, notes) if not args.quick else []
    pool_records, pool_gm, pool_cv2_gm, back_records, back_gm = [], None, None, [], None
    if "pool" in args.only:
        pool_records, pool_gm, pool_cv2_gm = run_pool(images, args, warnings, notes)
        back_records, back_gm = run_pool_backward(images, args, warnings, notes)
    del images
    pipeline = run_pipeline(args, warnings, notes) if "pipeline" in args.only else None

    if notes:
        print("Notes")
        for n in notes:
            print(f"  {n}")
        print()
    if warnings:
        print("Correctness warnings")
        for wl in warnings:
            print(f"  {wl}")
        print()
    else:
        print(f"All results matched their references (max abs diff < {TOL:g}).\n")
    elapsed = time.perf_counter() - t_start
    print(f"Total benchmark time: {elapsed:.1f} s")

    if args.json:
        out = {"environment": env,
               "config": {"sizes": [size_label(s) for s in args.sizes],
                          "kernels": args.kernels, "repeat": args.repeat,
                          "budget_s": args.budget, "quick": args.quick,
                          "methods": args.methods, "seed": args.seed, "tolerance": TOL},
               "conv": conv_records, "conv_geomean_ours_over_torch": summary,
               "conv_target": CONV_TARGET, "separable": sep_records, "pool": pool_records,
               "pool_geomean_ours_over_torch": pool_gm,
               "pool_geomean_ours_over_cv2": pool_cv2_gm, "pool_backward": back_records,
               "pool_backward_geomean_ours_over_torch": back_gm, "pipeline": pipeline,
               "pipeline_target_ms": PIPELINE_TARGET_MS, "warnings": warnings,
               "notes": notes, "elapsed_s": elapsed}
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(out), indent=2, default=_json_default,
                                   allow_nan=False))
        print(f"JSON written to {path}")
    return 0


def _finite(o):
    """NaN/inf (e.g. a geomean with no data) become null: JSON has no NaN."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    return o


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    sys.exit(main())
