"""Entry point: ``convscope [PHOTO] [--pipeline FILE] [--screenshot OUT.png --size WxH]``.

With ``--screenshot`` the window is rendered offscreen once the pipeline result is on
screen, saved as PNG, and the program exits (for docs, bug reports and tests).
"""

from __future__ import annotations

import argparse
import os
import sys


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x800, got {text!r}") from None
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {w}x{h} is outside 320x240..8192x8192")
    return w, h


def parse_args(argv):
    from convscope import __version__

    ap = argparse.ArgumentParser(
        prog="convscope",
        description="See convolution and pooling: open a photo or a matrix of numbers, "
                    "edit a pipeline of convolution, activation and pooling stages, and "
                    "explain any output pixel.",
        epilog="Without PHOTO, the photo (and pipeline) of the last session is opened, "
               "or a bundled sample photo on the first start.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    ap.add_argument("image_pos", nargs="?", metavar="PHOTO",
                    help="image (any format Pillow reads) or matrix (.csv, .txt, .npy) "
                         "to open")
    ap.add_argument("--image", metavar="PHOTO", help="the same as PHOTO")
    ap.add_argument("--pipeline", metavar="FILE.json", help="pipeline JSON to load")
    ap.add_argument("--screenshot", metavar="OUT.png", help="render offscreen, save, exit")
    ap.add_argument("--size", type=_size, default=(1280, 800), help="window size WxH (default: 1280x800)")
    ap.add_argument("--view", choices=["main", "train", "inspect"], default=None,
                    help="which view to show (default: the one open at the last quit)")
    ap.add_argument("--model", help="trained model (.npz) for the train/inspect views")
    ap.add_argument("--fresh", action="store_true",
                    help="start clean: ignore (and forget) the session saved at the last quit")
    return ap.parse_args(argv)


def _report_warm_up(win, warm) -> None:
    """While the first compile of the convolution loop runs (the first start after an
    install: a few seconds; later starts load it from numba's cache in under a second),
    say so in the status bar, so that maps that wait for it do not look stuck."""
    from PyQt6.QtCore import QTimer

    message = "Compiling the convolution loop (first start after installing only)…"
    timer = QTimer(win)
    timer.setInterval(250)
    shown = {"n": 0}

    def check():
        shown["n"] += 1
        if not warm.is_alive():
            timer.stop()
            if win.statusBar().currentMessage() == message:
                win.statusBar().clearMessage()
        elif shown["n"] == 4:  # still compiling after a second
            win.statusBar().showMessage(message)

    timer.timeout.connect(check)
    timer.start()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from .system_check import missing_packages, report, uses_xcb
    if uses_xcb():
        missing = missing_packages()
        if missing:  # Qt would abort naming only one of them
            print(report(missing), file=sys.stderr)
            return 1
    import pyqtgraph as pg
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from ..core.memory import reuse_large_allocations, set_blas_threads

    from .window import SAMPLE_IMAGE, MainWindow

    reuse_large_allocations()
    # interactive updates multiply small matrices on the UI thread: one BLAS thread
    # avoids idle threads spinning against it (training raises it while it runs)
    set_blas_threads(1)
    # compile (or load from numba's cache) the convolution loop while the window opens
    import threading

    from ..core import _jit
    warm = _jit.warm_up_in_background()
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ConvScope")
    win = MainWindow()
    width, height = args.size
    screen = app.primaryScreen()
    if not args.screenshot and screen is not None:
        # the whole window, frame and status bar included, on the screen
        avail = screen.availableGeometry()
        width, height = min(width, avail.width() - 16), min(height, avail.height() - 48)
    win.resize(width, height)
    _report_warm_up(win, warm)
    restored = None
    win.persist_session = not args.screenshot
    if args.fresh:
        MainWindow.clear_session(win.settings)
    elif not args.screenshot:
        restored = win.restore_session()
    image = args.image or args.image_pos or restored or str(SAMPLE_IMAGE)
    if args.pipeline and not win.load_pipeline_file(args.pipeline):
        print(f"convscope: {win.message.text()}", file=sys.stderr)
        if args.screenshot:
            return 2
    status = {"code": 0}
    if args.screenshot:
        out_path = args.screenshot

        def shoot(*_):
            # let the layout settle before grabbing
            QTimer.singleShot(150, lambda: _save_screenshot(win, out_path, status, app))

        win.resultShown.connect(shoot)

        def failed(reason):
            # the window shows the reason; save that and report it
            print(f"convscope: the pipeline fails on this image: {reason}", file=sys.stderr)
            status["code"] = 2
            shoot()

        win.resultFailed.connect(failed)
        QTimer.singleShot(60_000, lambda: (print("convscope: timed out waiting for the result",
                                                 file=sys.stderr), app.exit(3)))
    if args.model and not win.train_view.load_model_file(args.model):
        print(f"convscope: cannot load the model {args.model}", file=sys.stderr)
        if args.screenshot:
            return 2
    if args.view:
        win.show_view(args.view)
    win.show()
    if args.image or args.image_pos or restored or SAMPLE_IMAGE.exists():
        win.load_image_file(image, wait=True)
    else:  # installed without the repository's assets/: a generated test card
        win.set_image(_test_card(), "<test card>")
    if not args.screenshot and win.message.text() == "":
        win.show_first_start_hint()
    if win.image is None:
        print(f"convscope: {win.message.text()}", file=sys.stderr)
        if args.screenshot:
            return 2
    probe = os.environ.get("CONVSCOPE_STARTUP_PROBE")
    if probe:  # bench/bench_start.py: seconds from launch to the first maps, then quit
        import time
        beats = [time.perf_counter()]
        heart = QTimer(win)
        heart.setInterval(5)
        heart.timeout.connect(lambda: beats.append(time.perf_counter()))
        heart.start()

        shown = {}

        def first_maps(*_):
            if "t" not in shown:
                shown["t"] = time.time() - float(probe)
            if warm.is_alive():  # keep measuring until the compiled loop is loaded too
                QTimer.singleShot(20, first_maps)
                return
            now = time.perf_counter()
            gaps = [b - a for a, b in zip(beats, beats[1:] + [now])]
            print(f"first maps after {shown['t']:.3f} s; longest UI-thread stall in the "
                  f"event loop {max(gaps) * 1e3 - 5:.0f} ms (until the loop was loaded, "
                  f"{time.time() - float(probe):.2f} s)", flush=True)
            heart.stop()
            QTimer.singleShot(0, win.close)

        if win.output is not None:
            first_maps()
        else:
            win.resultShown.connect(first_maps)
    install_quit_signals(win)
    rc = app.exec()
    # however the loop ended, stop the worker threads before Python tears down
    # (a QThread or a numba compile still running at exit crashed the interpreter)
    win.runner.shutdown()
    warm.join(timeout=2)  # loading the cache takes < 0.5 s; a compile runs in its own process
    return status["code"] or rc


def install_quit_signals(win) -> None:
    """SIGTERM, SIGHUP (a closed terminal, a logout) and Ctrl-C in the terminal close
    the window as its close button does, without questions: a running export is
    waited for (no staging folder is left behind), training and an animation being
    saved are stopped, the session is saved. Before, these signals killed the process
    on the spot. Python runs signal handlers only between bytecodes, so a timer gives
    it the chance while Qt's loop waits."""
    import signal

    from PyQt6.QtCore import QTimer

    def on_signal(signum, frame):  # noqa: ARG001 (signal handler signature)
        win.quit_without_questions = True
        QTimer.singleShot(0, win.close)

    for name in ("SIGTERM", "SIGHUP", "SIGINT"):
        signum = getattr(signal, name, None)
        if signum is not None:
            try:
                signal.signal(signum, on_signal)
            except (ValueError, OSError):  # not the main thread
                pass
    tick = QTimer(win)
    tick.setInterval(200)
    tick.timeout.connect(lambda: None)
    tick.start()


def _test_card():
    import numpy as np
    y, x = np.mgrid[0:300, 0:450].astype(np.float32)
    img = np.stack([x / 450, y / 300, 0.5 + 0.5 * np.sin((x + y) / 12)], axis=2)
    img[100:200, 150:300] = ((x[100:200, 150:300] // 15 + y[100:200, 150:300] // 15) % 2)[..., None]
    return img.astype(np.float32)


def _save_screenshot(win, path, status, app):
    pix = win.grab()
    tmp = f"{path}.tmp.png"
    if not pix.save(tmp, "PNG"):
        print(f"convscope: cannot write {path}", file=sys.stderr)
        status["code"] = 2
    else:
        os.replace(tmp, path)
        print(f"saved {pix.width()}x{pix.height()} screenshot to {path}")
    win.close()
    app.quit()
