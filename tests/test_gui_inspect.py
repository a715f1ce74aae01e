"""The Inspect tab: drawing canvas, predictions, every layer's maps, explanations, photo input."""

from dataclasses import replace

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, QPointF, Qt

from convscope.app.digit_canvas import SIDE, DigitCanvas, brush_profile, stroke_layer
from convscope.app.inspect_view import (NO_MODEL_HINT, InspectView, _TestSet, filter_labels, level_stats,
                              normalise, photo_to_mnist)
from convscope.core.display import map_stats
from convscope.core.nn.data import MNIST_MEAN, MNIST_STD, load_bundled_mnist
from convscope.core.nn.model import ARCHITECTURES, Sequential, build, to_pipeline
from convscope.core.nn.train import TrainConfig, train
from convscope.core.pipeline import run

LEFT = Qt.MouseButton.LeftButton
RIGHT = Qt.MouseButton.RightButton


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data():
    return load_bundled_mnist()


@pytest.fixture(scope="module")
def test_images(data):
    """The bundled test images back in [0, 1], as the canvas holds them."""
    x = data.x_test[:, 0] * np.float32(MNIST_STD) + np.float32(MNIST_MEAN)
    return np.clip(x, 0, 1).astype(np.float32), data.y_test


@pytest.fixture(scope="module")
def tiny(data):
    """The 'tiny' architecture trained for one epoch on 3000 images (~89 % accurate)."""
    model = build(ARCHITECTURES["tiny"], seed=0)
    subset = replace(data, x_train=data.x_train[:3000], y_train=data.y_train[:3000],
                     x_test=data.x_test[:20], y_test=data.y_test[:20])
    for _ in train(model, subset, TrainConfig(epochs=1, batch_size=32, lr=3e-3, seed=0)):
        pass
    return model


@pytest.fixture(scope="module")
def keras():
    return build(ARCHITECTURES["keras_mnist"], seed=1)  # untrained is enough for wiring


@pytest.fixture(scope="module")
def keras_view(qapp, keras):
    """One view of keras_mnist for the module (its 289 map views take a while to build)."""
    v = InspectView()
    v.resize(1280, 760)
    v.show()
    v.set_model(keras)
    yield v
    v.close()
    v.deleteLater()


@pytest.fixture(scope="module")
def tiny_view(qapp, tiny):
    """A view of the trained tiny model shared by the tests that only read from it."""
    v = InspectView()
    v.resize(1280, 760)
    v.show()
    v.set_model(tiny)
    yield v
    v.close()
    v.deleteLater()


@pytest.fixture
def view(qtbot):
    v = InspectView()
    qtbot.addWidget(v)
    v.resize(1280, 760)
    v.show()
    qtbot.waitExposed(v)
    return v


def _digit(test_images, i):
    return test_images[0][i], int(test_images[1][i])


def _features(model, x01):
    return model.features(normalise(x01)[None, None])


def _draw(qtbot, canvas, points):
    """A stroke through ``points`` (widget pixels), with intermediate mouse moves."""
    qtbot.mousePress(canvas, LEFT, pos=QPoint(*points[0]))
    for a, b in zip(points, points[1:]):
        for t in np.linspace(0, 1, 6)[1:]:
            qtbot.mouseMove(canvas, QPoint(int(a[0] + t * (b[0] - a[0])),
                                           int(a[1] + t * (b[1] - a[1]))))
    qtbot.mouseRelease(canvas, LEFT, pos=QPoint(*points[-1]))


# ---------------------------------------------------------------------------- no model


def test_without_model_shows_the_hint(view):
    assert view.problem() == NO_MODEL_HINT
    assert view.hint_label.isVisible() and NO_MODEL_HINT in view.hint_label.text()
    assert not view.grid.isVisible()
    assert view.probabilities().size == 0
    assert view.result() is None
    view.set_input(np.zeros((SIDE, SIDE), np.float32))  # no model: nothing to update
    assert view.last_update_ms is None


def test_set_model_validates(view, tiny):
    with pytest.raises(TypeError, match="Sequential"):
        view.set_model("model.npz")
    rgb = Sequential(build(ARCHITECTURES["tiny"]).layers[:3], input_shape=(3, 28, 28))
    view.set_model(rgb)
    assert "3x28x28" in view.problem() and view.hint_label.isVisible()
    view.set_model(tiny)
    assert view.problem() is None and view.grid.isVisible()
    view.set_model(None)
    assert view.problem() == NO_MODEL_HINT and view.probabilities().size == 0


def test_the_view_keeps_its_own_copy_of_the_weights(view, qtbot):
    model = build(ARCHITECTURES["tiny"], seed=3)
    view.set_model(model)
    before = view.probabilities()
    model.layers[0].params["weight"] += 1.0  # the Train tab training on
    view.set_input(np.zeros((SIDE, SIDE), np.float32))
    np.testing.assert_array_equal(view.probabilities(), before)


# ---------------------------------------------------------------------------- maps


@pytest.mark.parametrize("arch", ["tiny", "keras_mnist"])
def test_grid_shows_every_layer_exactly(request, arch, test_images):
    if arch == "tiny":
        view, model = request.getfixturevalue("view"), request.getfixturevalue("tiny")
        view.set_model(model)
    else:
        view, model = request.getfixturevalue("keras_view"), request.getfixturevalue("keras")
    x, _ = _digit(test_images, 3)
    view.set_input(x)
    pipe, index = to_pipeline(model)
    res = view.result()
    assert len(res.stages) == len(pipe.stages)
    feats = _features(model, x)
    shown = view.grid.views()
    levels = {lv for lv, _ in shown}
    assert levels == set(range(-1, len(pipe.stages)))  # one level per stage plus the input
    for s, li in enumerate(index):
        expected = feats[li][0]
        np.testing.assert_array_equal(res.stages[s].maps, expected)
        assert sum(1 for lv, _ in shown if lv == s) == len(expected)
        for m in (0, len(expected) - 1):  # what the map views display
            np.testing.assert_array_equal(shown[(s, m)].image.image, expected[m])
    np.testing.assert_array_equal(res.input.maps[0], normalise(x))
    np.testing.assert_array_equal(shown[(-1, 0)].image.image, x)  # the input as drawn
    np.testing.assert_allclose(view.probabilities(),
                               model.predict_proba(normalise(x)[None, None])[0], atol=1e-6)


def test_pipeline_engine_gives_the_same_maps(keras_view, keras, test_images):
    """engine="pipeline" runs core.pipeline.run on every update: same maps, same labels."""
    view = keras_view
    x, _ = _digit(test_images, 0)
    view.set_input(x)
    layers = view.result()
    view.engine = "pipeline"
    try:
        view.set_input(x)
    finally:
        view.engine = "layers"
    piped = view.result()
    for a, b in zip(layers.stages, piped.stages):
        np.testing.assert_array_equal(a.maps, b.maps)
        assert a.labels == b.labels and a.columns == b.columns and a.formula == b.formula
    with pytest.raises(ValueError, match="engine"):
        view.engine = "torch"
    ref = run(normalise(x)[:, :, None], to_pipeline(keras)[0])
    for a, b in zip(piped.stages, ref.stages):
        np.testing.assert_array_equal(a.maps, b.maps)


def test_core_pipeline_matches_the_layers_for_tiny(tiny, test_images):
    # the pipeline may pick another exact method than the layer's im2col (few channel
    # pairs: shift-and-add), so the sums differ only in float32 rounding order
    x, _ = _digit(test_images, 0)
    pipe, index = to_pipeline(tiny)
    res = run(normalise(x)[:, :, None], pipe)
    feats = _features(tiny, x)
    for s, li in enumerate(index):
        np.testing.assert_allclose(res.stages[s].maps, feats[li][0], rtol=1e-5, atol=1e-5)


def test_map_names_follow_their_filter(tiny_view, tiny):
    view = tiny_view
    res = view.result()
    assert res.input.labels == ["gray"]
    assert res.stages[0].labels[:2] == ["filter 1", "filter 2"]
    assert res.stages[2].labels[7] == "filter 8"  # pooled ReLU of filter 8
    assert res.stages[3].labels[-1] == "filter 16"
    assert filter_labels(res).stages[0].labels == res.stages[0].labels


def test_level_stats_equal_map_stats():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 11, 13)).astype(np.float32)
    maps[1] = 0.0
    for got, ref in zip(level_stats(maps), [map_stats(m) for m in maps]):
        for f in ("min", "max", "mean", "p_low", "p_high"):
            assert getattr(got, f) == pytest.approx(getattr(ref, f), rel=1e-9, abs=1e-12), f
    maps[2, 0, 0] = np.nan  # falls back to map_stats per map
    got = level_stats(maps)
    assert got[2] == map_stats(maps[2])


# ---------------------------------------------------------------------------- predictions


def test_a_test_digit_is_predicted_as_its_label(tiny_view, tiny, test_images):
    view = tiny_view
    hits = 0
    for i in range(20):
        x, label = _digit(test_images, i)
        view.set_input(x)
        p = view.probabilities()
        assert p.shape == (10,) and p.sum() == pytest.approx(1, abs=1e-5)
        hits += int(np.argmax(p)) == label
        assert view.prediction_label.text() == str(int(np.argmax(p)))
        assert view.chart.highlighted() == int(np.argmax(p))
    assert hits >= 17, f"only {hits} of 20 test digits predicted correctly"


def test_test_image_picker(view, tiny, test_images, qtbot):
    view.set_model(tiny)
    view.show_test_image(5)
    x, label = _digit(test_images, 5)
    np.testing.assert_array_equal(view.canvas.image(), x)
    assert view.test_spin.value() == 5 and view.test_spin.isEnabled()
    assert f"true label <b>{label}</b>" in view.test_label.text()
    view.test_spin.setValue(6)
    assert f"true label <b>{_digit(test_images, 6)[1]}</b>" in view.test_label.text()
    qtbot.mouseClick(view.random_button, LEFT)
    i = view.test_spin.value()
    np.testing.assert_array_equal(view.canvas.image(), test_images[0][i])
    with pytest.raises(ValueError, match="0..1999"):
        view.show_test_image(len(_TestSet.images))


def test_drawing_updates_the_probabilities_and_clear_resets(view, tiny, qtbot):
    view.set_model(tiny)
    blank = view.probabilities()
    n = len(view.update_times_ms)
    with qtbot.waitSignal(view.canvas.changed, timeout=2000):
        _draw(qtbot, view.canvas, [(140, 60), (140, 140), (140, 230)])  # a "1"
    qtbot.waitUntil(lambda: len(view.update_times_ms) > n, timeout=2000)
    qtbot.waitUntil(lambda: not view._kick.isActive(), timeout=2000)
    img = view.canvas.image()
    assert img.dtype == np.float32 and img.shape == (SIDE, SIDE)
    assert img.min() >= 0 and img.max() == 1.0
    assert img[14, 14] == 1.0 and img[14, 3] == 0.0  # ink on the stroke only
    np.testing.assert_array_equal(view.result().input.maps[0], normalise(img))
    drawn = view.probabilities()
    assert not np.allclose(drawn, blank)
    np.testing.assert_allclose(drawn, tiny.predict_proba(normalise(img)[None, None])[0],
                               atol=1e-6)
    qtbot.mouseClick(view.clear_button, LEFT)
    qtbot.waitUntil(lambda: np.allclose(view.probabilities(), blank), timeout=2000)
    assert not view.canvas.image().any()
    _draw(qtbot, view.canvas, [(60, 60), (200, 200)])
    qtbot.waitUntil(lambda: not np.allclose(view.probabilities(), blank), timeout=2000)
    qtbot.mousePress(view.canvas, RIGHT, pos=QPoint(100, 100))  # right button clears
    assert not view.canvas.image().any()
    qtbot.waitUntil(lambda: np.allclose(view.probabilities(), blank), timeout=2000)


def test_stroke_updates_are_coalesced(view, tiny, qtbot, test_images):
    view.set_model(tiny)
    n = len(view.update_times_ms)
    for i in range(5):  # five changes in one event-loop turn: one update, for the newest
        view.canvas.set_image(test_images[0][i])
    assert len(view.update_times_ms) == n
    qtbot.waitUntil(lambda: len(view.update_times_ms) == n + 1, timeout=2000)
    qtbot.wait(30)
    assert len(view.update_times_ms) == n + 1
    np.testing.assert_array_equal(view.result().input.maps[0], normalise(test_images[0][4]))


def test_update_time_is_recorded(keras_view, test_images):
    view = keras_view
    view.set_input(test_images[0][0])
    assert isinstance(view.last_update_ms, float) and 0 < view.last_update_ms < 10_000
    assert set(view.last_update_parts) == {"forward", "stats", "grid", "bars"}
    assert all(v >= 0 for v in view.last_update_parts.values())


# ---------------------------------------------------------------------------- explanations


def _click_map_pixel(qtbot, map_view, row, col):
    """A real mouse click on pixel (row, col) of a map view."""
    h, w = map_view.map_shape
    eh, ew = map_view.extent
    scene = map_view.vb.mapViewToScene(QPointF((col + 0.5) * ew / w, (row + 0.5) * eh / h))
    pos = map_view.view.mapFromScene(scene)
    qtbot.mouseClick(map_view.view.viewport(), LEFT, pos=pos)


def test_clicking_a_map_pixel_explains_it(tiny_view, tiny, test_images, qtbot):
    view = tiny_view
    x, _ = _digit(test_images, 7)
    view.set_input(x)
    res = view.result()
    _click_map_pixel(qtbot, view.grid.views()[(3, 5)], 4, 6)  # second conv, filter 6
    ex = view.explain_panel.explanation()
    assert ex is not None
    assert (ex.kind, ex.level, ex.map_index, ex.row, ex.col) == ("conv", 3, 5, 4, 6)
    value = float(res.stages[3].maps[5, 4, 6])
    assert ex.value == value
    assert ex.recomputed == pytest.approx(value, rel=1e-5, abs=1e-5)
    assert len(ex.inputs) == 8  # a sum over every input channel ...
    assert ex.recomputed == pytest.approx(ex.total + ex.bias)  # ... plus the bias
    assert ex.bias == pytest.approx(float(tiny.layers[3].params["bias"][5]))
    assert not view.explain_panel.mismatch()
    assert "value" in view.explain_panel.plain_text()


def test_every_level_explains(tiny_view, test_images):
    view = tiny_view
    view.set_input(_digit(test_images, 1)[0])
    kinds = {-1: "input", 0: "conv", 1: "activation", 2: "pool", 3: "conv", 5: "pool"}
    for level, kind in kinds.items():
        lvl = view.result().level(level)
        m, h, w = lvl.maps.shape
        view.explain_at(level, m - 1, h // 2, w // 2)
        ex = view.explain_panel.explanation()
        assert ex.kind == kind
        assert ex.recomputed == pytest.approx(float(lvl.maps[m - 1, h // 2, w // 2]), abs=1e-5)


def test_the_explanation_follows_the_input(tiny_view, tiny, test_images, qtbot):
    view = tiny_view
    view.set_input(_digit(test_images, 0)[0])
    view.explain_at(0, 2, 10, 10)
    first = view.explain_panel.explanation().value
    view.set_input(_digit(test_images, 1)[0])
    new = float(view.result().stages[0].maps[2, 10, 10])
    assert new != first
    qtbot.waitUntil(lambda: view.explain_panel.explanation().value == new, timeout=2000)


def test_a_filter_can_be_sent_to_the_kernel_editor(tiny_view, tiny):
    view = tiny_view
    kernel, name = view.kernel_for_map(2, 4)  # pooled ReLU of filter 5 of layer 1
    assert name == "layer 1 filter 5"
    np.testing.assert_array_equal(kernel.weights, tiny.layers[0].params["weight"][4, 0])
    assert kernel.bias == pytest.approx(float(tiny.layers[0].params["bias"][4]))
    kernel, name = view.kernel_for_map(3, 15)
    assert name == "layer 4 filter 16" and kernel.weights.shape == (8, 3, 3)
    assert view.kernel_for_map(-1, 0) is None


# ---------------------------------------------------------------------------- photo


def _dark_bar_on_white(h=60, w=40):
    img = np.ones((h, w, 3), np.float32)
    img[10:50, 16:24] = (0.1, 0.1, 0.3)
    return img


def test_photo_to_mnist_steps():
    conv = photo_to_mnist(_dark_bar_on_white())
    assert conv.gray.shape == (60, 40)
    assert conv.fitted.shape == conv.result.shape == (SIDE, SIDE)
    assert conv.result.dtype == np.float32
    assert conv.inverted and conv.background == pytest.approx(1.0)
    assert 0 <= conv.result.min() and conv.result.max() <= 1
    # 60x40 fits into 20x20 as 20x13, centred: the rest is background (0 once inverted)
    ink = np.argwhere(conv.result > 0.5)
    assert ink[:, 0].min() >= 4 and ink[:, 0].max() <= 23
    assert ink[:, 1].min() >= 7 and ink[:, 1].max() <= 20
    assert conv.result[:4].max() == 0 and conv.result[:, :7].max() == 0
    dark = photo_to_mnist(1.0 - _dark_bar_on_white())
    assert not dark.inverted
    np.testing.assert_allclose(dark.result, dark.fitted)
    gray = photo_to_mnist(_dark_bar_on_white()[:, :, :1])
    assert gray.inverted
    with pytest.raises(ValueError, match="shape"):
        photo_to_mnist(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        photo_to_mnist(np.full((4, 4), np.nan))


def test_use_the_loaded_photo(view, tiny, qtbot):
    view.set_model(tiny)
    assert not view.photo_button.isEnabled()
    view.set_photo(_dark_bar_on_white())
    assert view.photo_button.isEnabled()
    qtbot.mouseClick(view.photo_button, LEFT)
    x = view.canvas.image()
    assert x.shape == (SIDE, SIDE) and x.dtype == np.float32
    np.testing.assert_array_equal(x, view.conversion().result)
    np.testing.assert_array_equal(view.result().input.maps[0], normalise(x))
    assert [c.text() for c in view.thumb_captions] == ["gray", "28x28", "inverted"]
    for thumb in view.thumbs:
        assert thumb.pixmap() is not None and not thumb.pixmap().isNull()
        assert max(thumb.pixmap().width(), thumb.pixmap().height()) == 64
    view.set_photo(1.0 - _dark_bar_on_white())  # already white on black
    view.use_photo()
    assert view.thumb_captions[2].text() == "not inverted"
    with pytest.raises(ValueError, match="shape"):
        view.set_photo(np.zeros((5, 5, 2)))


# ---------------------------------------------------------------------------- canvas


def test_brush_is_soft_and_round():
    assert brush_profile(np.array([0.0]))[0] == 1.0
    assert 0.4 < brush_profile(np.array([1.5]))[0] < 0.6
    assert brush_profile(np.array([3.0]))[0] < 0.05
    dot = stroke_layer((14.5, 14.5), (14.5, 14.5))
    assert dot[14, 14] == 1.0 and dot.max() <= 1.0
    np.testing.assert_allclose(dot, dot.T)  # round
    line = stroke_layer((5.5, 14.5), (22.5, 14.5))
    assert line[14, 5:23].min() == 1.0 and line[:11].max() < 0.05


def test_canvas_api(qtbot):
    c = DigitCanvas()
    qtbot.addWidget(c)
    assert c.size().width() == c.size().height() == 280
    img = np.zeros((SIDE, SIDE), np.float32)
    img[5, 6] = 0.5
    with qtbot.waitSignal(c.changed) as sig:
        c.set_image(img)
    np.testing.assert_array_equal(sig.args[0], img)
    np.testing.assert_array_equal(c.image(), img)
    c.image()[5, 6] = 1.0  # a copy
    assert c.image()[5, 6] == 0.5
    for bad, msg in [(np.zeros((28, 27)), "28x28"), (np.full((28, 28), 2.0), r"\[0, 1\]"),
                     (np.full((28, 28), np.nan), "non-finite")]:
        with pytest.raises(ValueError, match=msg):
            c.set_image(bad)
    with qtbot.waitSignal(c.changed) as sig:
        c.clear()
    assert not sig.args[0].any()


def test_canvas_emits_throttled_and_always_the_final_state(qtbot):
    c = DigitCanvas()
    qtbot.addWidget(c)
    c.show()
    got = []
    c.changed.connect(got.append)
    qtbot.mousePress(c, LEFT, pos=QPoint(40, 140))
    for x in range(42, 240, 2):  # ~100 moves in far less than 100 * 16 ms
        qtbot.mouseMove(c, QPoint(x, 140))
    qtbot.mouseRelease(c, LEFT, pos=QPoint(240, 140))
    assert 1 <= len(got) < 50
    np.testing.assert_array_equal(got[-1], c.image())
    assert c.image()[14, 4:24].min() == 1.0
    # a second stroke across the first adds to it, clipped to 1
    before = c.image()
    qtbot.mousePress(c, LEFT, pos=QPoint(140, 40))
    qtbot.mouseMove(c, QPoint(140, 240))
    qtbot.mouseRelease(c, LEFT, pos=QPoint(140, 240))
    after = c.image()
    assert (after >= before).all() and after.max() == 1.0 and after[20, 14] == 1.0


def test_the_photo_and_test_image_panels_work_on_their_own(qtbot):
    """The Inspect tab's left-hand panels are widgets of their own (app/inspect_photo.py,
    app/inspect_testset.py): they announce what they make, the view decides."""
    from convscope.app.inspect_photo import PhotoPanel
    from convscope.app.inspect_testset import TestImagePanel
    photo = PhotoPanel()
    qtbot.addWidget(photo)
    assert not photo.photo_button.isEnabled()
    img = np.zeros((40, 30, 3), np.float32)
    img[10:30, 12:18] = 1.0                              # a bright bar on black
    photo.set_photo(img)
    assert photo.photo_button.isEnabled() and "30x40" in photo.photo_note.text()
    # which photo the button would convert: a gray preview at once, the rest on demand
    assert not photo.thumbs[0].pixmap().isNull() and photo.thumbs[1].pixmap().isNull()
    big = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
    photo.set_photo(big)
    assert max(photo.thumbs[0].pixmap().width(), photo.thumbs[0].pixmap().height()) <= 64
    photo.set_photo(img)
    with qtbot.waitSignal(photo.converted) as got:
        photo.photo_button.click()
    assert got.args[0].shape == (28, 28) and photo.conversion() is not None
    assert not photo.conversion().inverted and photo.thumb_captions[2].text() == "not inverted"
    with pytest.raises(ValueError, match="shape"):
        photo.set_photo(np.zeros((4, 4, 2)))
    photo.set_photo(None)
    assert not photo.photo_button.isEnabled() and photo.conversion() is None
    assert all(t.pixmap().isNull() for t in photo.thumbs)

    tests = TestImagePanel()
    qtbot.addWidget(tests)
    with qtbot.waitSignal(tests.picked) as got:
        tests.show_image(3)
    assert got.args[0].shape == (28, 28) and tests.index == 3
    assert f"true label <b>{int(_TestSet.labels[3])}</b>" in tests.test_label.text()
    tests.forget("drawn over")
    assert tests.index is None and tests.test_label.text().endswith("(drawn over)")
    with pytest.raises(ValueError, match="index must be in"):
        tests.show_image(10 ** 6)
