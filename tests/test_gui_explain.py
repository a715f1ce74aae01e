"""The explain panel shows what core.explain computed, for every kind of stage."""

from dataclasses import replace

import numpy as np
import pytest

from convscope.app.explain_panel import HINT, ExplainPanel, ValueGrid, format_number
from convscope.core.explain import explain
from convscope.core.pipeline import ActivationStage, ConvStage, Kernel, Pipeline, PoolStage, run

# REFERENCE.md, test vector 1
IMAGE = np.array([[105, 102, 100, 97, 96],
                  [103, 99, 103, 101, 102],
                  [101, 98, 104, 102, 100],
                  [99, 101, 106, 104, 99],
                  [104, 104, 104, 100, 98]], np.float32)[:, :, None]
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)


@pytest.fixture
def result():
    pipe = Pipeline([ConvStage([Kernel(SHARPEN, name="sharpen")], padding=1),
                     ActivationStage("relu"), PoolStage("max", 2)])
    res = run(IMAGE, pipe)
    assert res.error is None
    return res


@pytest.fixture
def panel(qtbot):
    p = ExplainPanel()
    qtbot.addWidget(p)
    p.resize(460, 640)
    return p


def _grids_fit(panel):
    """Every grid gets its full size and lies inside its parent (nothing clipped)."""
    for name in ("window", "weights", "products"):
        for i in range(panel.grid_count(name)):
            g = panel.grid(name, i)
            assert g.size() == g.sizeHint(), (name, i, g.size(), g.sizeHint())
            assert g.parentWidget().rect().contains(g.geometry()), (name, i)


def test_starts_with_hint_and_nothing_shown(panel):
    assert HINT in panel.plain_text()
    assert panel.explanation() is None
    assert panel.winner_cell() is None
    assert panel.grid_count("window") == 0


def test_conv_reference_vector(panel, result, qtbot):
    ex = explain(result, 0, 0, 0, 0)
    panel.show_explanation(ex, result.input.labels)
    panel.show()
    qtbot.waitExposed(panel)
    text = panel.plain_text()
    assert "= 320" in text
    assert "105*5" in text
    assert "0*0 + 0*-1 + 0*0 + 0*-1 + 105*5 + 102*-1 + 0*0 + 103*-1 + 99*0 = 320" in text
    assert "sum 320 + bias 0 = value 320" in text
    assert "gray * sharpen" in text and "stage 1" in text and "row 0, col 0" in text
    assert "value 320" in text

    assert panel.grid_count("window") == 1
    window = panel.grid_texts("window")
    assert window == [["0", "0", "0"], ["0", "105", "102"], ["0", "103", "99"]]
    assert window[1][1] == "105"  # the centre cell is the image's top-left pixel
    assert panel.grid_texts("weights") == [["0", "-1", "0"], ["-1", "5", "-1"],
                                           ["0", "-1", "0"]]
    assert panel.grid_texts("products") == [["0", "0", "0"], ["0", "525", "-102"],
                                            ["0", "-103", "0"]]
    pad = {(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)}
    assert panel.grid("window").padding_cells() == pad
    assert panel.grid("products").padding_cells() == pad
    assert panel.grid("weights").padding_cells() == set()
    for r, c in pad:
        assert panel.grid("window").tooltip_at(r, c).startswith("padding")
    assert not panel.grid("window").tooltip_at(1, 1).startswith("padding")
    assert "105 \u00d7 5 = 525" in panel.grid("products").tooltip_at(1, 1)
    assert not panel.mismatch()
    assert panel.winner_cell() is None
    _grids_fit(panel)


def test_pool_winner_highlighted(panel, result):
    relu = result.stages[1].maps[0]
    row, col = 1, 1
    ex = explain(result, 2, 0, row, col)
    panel.show_explanation(ex)
    window = relu[2 * row:2 * row + 2, 2 * col:2 * col + 2]
    expected = tuple(int(v) for v in np.unravel_index(np.argmax(window), window.shape))
    assert panel.winner_cell() == expected
    assert panel.grid_texts("window") == [[format_number(v, 3) for v in line]
                                          for line in window]
    assert panel.grid("window").padding_cells() == set()
    text = panel.plain_text()
    assert f"= {format_number(window.max())}" in text
    assert ex.text in text
    assert "winner" in text


def test_pool_with_padding_greys_padding_and_winner_is_real(panel, qtbot):
    res = run(IMAGE, Pipeline([PoolStage("max", 2, padding=1)]))
    panel.show_explanation(explain(res, 0, 0, 0, 0))
    assert panel.grid_texts("window") == [["pad", "pad"], ["pad", "105"]]
    assert panel.grid("window").padding_cells() == {(0, 0), (0, 1), (1, 0)}
    assert panel.winner_cell() == (1, 1)
    assert "padding" in panel.grid("window").tooltip_at(0, 0)


def test_avg_pool_shows_divisor(panel):
    res = run(IMAGE, Pipeline([PoolStage("avg", 3, stride=2, padding=1)]))
    ex = explain(res, 0, 0, 0, 0)
    panel.show_explanation(ex)
    text = panel.plain_text()
    assert "divisor 9" in text
    assert ex.text in text
    assert panel.winner_cell() is None


def test_activation(panel, result):
    ex = explain(result, 1, 0, 0, 0)
    panel.show_explanation(ex, result.stages[0].labels)
    text = panel.plain_text()
    assert "relu(320) = 320" in text
    assert "pre-activation x = 320" in text
    assert "max(0, x)" in text
    assert panel.grid_count("window") == 0


def test_negative_activation_input(panel):
    pipe = Pipeline([ConvStage([Kernel(-SHARPEN, name="neg")], padding=1),
                     ActivationStage("leaky_relu", 0.1)])
    res = run(IMAGE, pipe)
    ex = explain(res, 1, 0, 0, 0)
    panel.show_explanation(ex)
    assert "leaky_relu_0.1(-320) = -32" in panel.plain_text()
    assert "pre-activation x = -320" in panel.plain_text()


def test_input_pixel(panel, result):
    panel.show_explanation(explain(result, -1, 0, 2, 3))
    text = panel.plain_text()
    assert "input" in text and "row 2, col 3" in text
    assert "value 102" in text


def test_clear_resets(panel, result):
    panel.show_explanation(explain(result, 2, 0, 0, 0))
    assert panel.winner_cell() is not None
    panel.clear()
    assert HINT in panel.plain_text()
    assert "320" not in panel.plain_text()
    assert panel.explanation() is None
    assert panel.winner_cell() is None
    assert panel.grid_count("window") == 0
    with pytest.raises(IndexError):
        panel.grid("window")


def test_sum_stage_with_three_maps_shows_three_windows(panel, qtbot):
    rgb = np.concatenate([IMAGE, IMAGE * 0.5, IMAGE * 0.25], axis=2)
    res = run(rgb, Pipeline([ConvStage([Kernel(SHARPEN, bias=1.5)], mode="sum", padding=1)]))
    ex = explain(res, 0, 0, 0, 0)
    panel.show_explanation(ex, res.input.labels)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.input_selector() is None
    for name in ("window", "weights", "products"):
        assert panel.grid_count(name) == 3
    assert [panel.grid_texts("window", i)[1][1] for i in range(3)] == ["105", "52.5", "26.2"]
    text = panel.plain_text()
    assert "map 0: R" in text and "map 1: G" in text and "map 2: B" in text
    assert f"+ bias 1.5 = value {format_number(ex.value)}" in text
    assert "partial sum" in text
    _grids_fit(panel)


def test_sum_stage_with_many_maps_uses_a_selector(panel, qtbot):
    img = np.concatenate([IMAGE * (k + 1) for k in range(5)], axis=2)
    res = run(img, Pipeline([ConvStage([Kernel(SHARPEN)], mode="sum", padding=1)]))
    panel.show_explanation(explain(res, 0, 0, 0, 0), res.input.labels)
    panel.show()
    qtbot.waitExposed(panel)
    sel = panel.input_selector()
    assert sel is not None and sel.count() == 5
    assert panel.grid_count("window") == 1
    assert panel.grid_texts("window")[1][1] == "105"
    sel.setCurrentIndex(3)
    assert panel.grid_count("window") == 1
    assert panel.grid_texts("window")[1][1] == "420"
    qtbot.waitUntil(lambda: panel.grid("window").isVisible())
    qtbot.waitUntil(lambda: panel.grid("window").size() == panel.grid("window").sizeHint())
    _grids_fit(panel)
    assert panel.grid("window").padding_cells() == {(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)}


def test_large_kernel_grids_wrap_and_fit(panel, qtbot):
    res = run(IMAGE, Pipeline([ConvStage([Kernel(np.ones((5, 5)) / 25)], padding=2)]))
    panel.show_explanation(explain(res, 0, 0, 2, 2))
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.grid_texts("weights")[0][0] == "0.04"
    _grids_fit(panel)


def test_mismatch_warning(panel, result):
    ex = explain(result, 0, 0, 0, 0)
    panel.show_explanation(ex)
    assert not panel.mismatch()
    assert "differ" not in panel.plain_text()
    panel.show_explanation(replace(ex, value=ex.value + 1.0))
    assert panel.mismatch()
    assert "engine and recomputation differ" in panel.plain_text()
    # within tolerance (1e-3 relative) is not a mismatch
    panel.show_explanation(replace(ex, value=ex.value * (1 + 1e-4)))
    assert not panel.mismatch()


def test_hover_links_the_three_grids(panel, result):
    panel.show_explanation(explain(result, 0, 0, 0, 0))
    panel.grid("products").hovered.emit(1, 2)
    assert all(panel.grid(n)._hover == (1, 2) for n in ("window", "weights", "products"))
    panel.grid("window").hovered.emit(-1, -1)
    assert all(panel.grid(n)._hover is None for n in ("window", "weights", "products"))


def test_unknown_kind_is_refused(panel, result):
    ex = replace(explain(result, 0, 0, 0, 0), kind="bogus")
    with pytest.raises(ValueError, match="bogus"):
        panel.show_explanation(ex)


def test_value_grid_refuses_bad_input(qtbot):
    with pytest.raises(ValueError, match="2-D"):
        ValueGrid(np.zeros(3))
    with pytest.raises(ValueError, match="shading"):
        ValueGrid(np.zeros((2, 2)), shading="rainbow")


@pytest.mark.parametrize("value, text", [(320.0, "320"), (-0.0, "0"), (0.04, "0.04"),
                                         (45.4444, "45.44"), (1 / 3, "0.3333"),
                                         (float("nan"), "nan"), (float("-inf"), "-inf"),
                                         (1e-12, "1e-12")])
def test_format_number(value, text):
    assert format_number(value) == text
