"""Watching a stage compute (issue 14): the steps, the frames and the animation files."""

import numpy as np
import pytest
from PIL import Image

from convscope.core.animate import (AnimationError, count_steps, render_step, save_animation,
                                    steps, window_view)
from convscope.core.explain import explain
from convscope.core.pipeline import (ActivationStage, ConvStage, Kernel, Pipeline, PoolStage,
                                     run)

RNG = np.random.default_rng(7)
IMG = RNG.normal(size=(9, 11, 2)).astype(np.float32)


def conv(**kw):
    k = Kernel(RNG.normal(size=(3, 3)), name="k", bias=0.25)
    return ConvStage([k], **kw)


CASES = [
    conv(stride=2, padding=1),
    conv(dilation=2, padding="same"),
    *[conv(padding=2, padding_mode=m, cval=0.5) for m in
      ("zeros", "constant", "reflect", "replicate", "circular")],
    conv(stride=(2, 3), padding="full", mode="sum"),
    PoolStage("max", 3, 2, padding=1, ceil_mode=True),
    PoolStage("avg", 2, 1, padding=1, count_include_pad=False),
]


@pytest.mark.parametrize("stage", CASES, ids=lambda s: s.describe())
def test_steps_visit_every_cell_in_order_with_the_explained_window(stage):
    res = run(IMG, Pipeline([stage]))
    assert res.error is None
    out = res.stages[0].maps
    h, w = out.shape[1:]
    for m in range(out.shape[0]):
        done = [s for s in steps(res, 0, m) if s.done]
        assert [(s.row, s.col) for s in done] == [divmod(k, w) for k in range(h * w)]
        for s in done:
            ex = explain(res, 0, m, s.row, s.col)
            assert s.running == pytest.approx(float(out[m, s.row, s.col]), rel=1e-5, abs=1e-5)
            # the cells drawn as the window hold the explanation's window values
            vals, pad, window, _, _, _, _ = window_view(res, s, 64)
            drawn = np.array([vals[i, j] for i, j in sorted(window)])
            want = ex.window[0].ravel()
            if ex.kind == "pool":
                real = ex.in_input.ravel()
                drawn, want = drawn[real], want[real]
            np.testing.assert_allclose(drawn, want, rtol=1e-6)


def test_tap_steps_build_the_running_sum_then_add_the_bias():
    res = run(IMG, Pipeline([conv(padding=1)]))
    cell = [s for s in steps(res, 0, 1, granularity="tap", cells=1)]
    ex = cell[-1].ex
    assert len(cell) == 10 and [s.tap for s in cell] == list(range(1, 10)) + [9]
    assert not any(s.done for s in cell[:-1]) and cell[-1].done
    assert cell[-2].running == pytest.approx(ex.total)
    assert cell[-1].running == pytest.approx(ex.total + 0.25)
    assert cell[-1].running == pytest.approx(float(res.stages[0].maps[1, 0, 0]), abs=1e-5)
    assert count_steps(res, 0, 1, granularity="tap") == 9 * 11 * 10


def test_summed_channels_show_their_partial_sums():
    res = run(IMG, Pipeline([conv(mode="sum", padding=1)]))
    s = next(s for s in steps(res, 0, 0) if s.done)
    assert len(s.partials) == 2
    assert sum(s.partials) == pytest.approx(s.ex.total)


def test_frames_and_files(tmp_path):
    res = run(IMG, Pipeline([conv(padding=1), PoolStage()]))
    frames = [render_step(res, s, (640, 360)) for s in steps(res, 0, 0, cells=6)]
    assert all(f.size == (640, 360) for f in frames)
    assert len({f.tobytes() for f in frames}) == 6            # every frame differs
    for name in ("a.gif", "a.png"):
        n = save_animation(frames, tmp_path / name, ms_per_frame=100)
        with Image.open(tmp_path / name) as im:
            assert im.n_frames == n == 6 and im.size == (640, 360)
    with pytest.raises(AnimationError, match=r"\.mp4"):
        save_animation(frames, tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_what_cannot_be_animated_is_said():
    res = run(IMG, Pipeline([ActivationStage("relu"), conv()]))
    with pytest.raises(AnimationError, match="activation"):
        list(steps(res, 0, 0))
    with pytest.raises(AnimationError, match="stage 5"):
        list(steps(res, 4, 0))
    with pytest.raises(AnimationError, match="map 9"):
        list(steps(res, 1, 8))


@pytest.mark.parametrize("size", [(465, 260), (640, 360), (960, 540), (1920, 1080)])
@pytest.mark.parametrize("key", ["sharpen", "max-pool-8x8", "dilation"])
def test_frame_texts_never_overlap(monkeypatch, size, key):
    """Seen in the real window: at the dock's size the input's label ran into the
    kernel's ('window + paddingkernel (weights)'). Every text drawn in a frame keeps
    clear of every other one (cell numbers are checked against their cells elsewhere)."""
    from PIL import ImageDraw

    from convscope.core.examples import example, load_input
    ex = example(key)
    res = run(load_input(ex), ex.pipeline)
    boxes = []
    real = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *args, **kw):
        font = kw.get("font")
        if font is not None and getattr(font, "size", 0) >= 10 and len(text) > 3:
            boxes.append((text, self.textbbox(xy, text, font=font, anchor=kw.get("anchor"))))
        return real(self, xy, text, *args, **kw)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", spy)
    step = next(steps(res, ex.stage, 0))
    render_step(res, step, size)
    assert len(boxes) >= 4
    for i, (ta, a) in enumerate(boxes):
        assert a[2] <= size[0] + 1, f"{ta!r} runs off the frame at {size}"
        for tb, b in boxes[i + 1:]:
            clear = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            assert clear, f"{ta!r} {a} overlaps {tb!r} {b} at {size}"
