"""The Help menu: a short guide, the keyboard shortcuts (read from the window's own
actions, so the list cannot go stale) and About (versions and licence)."""

from __future__ import annotations

import platform

from PyQt6.QtCore import PYQT_VERSION_STR, QT_VERSION_STR, Qt
from PyQt6.QtGui import QKeySequence
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

GUIDE = """
<h2>ConvScope in five minutes</h2>
<p><b>Where to begin:</b> the photo on the right is split into its channels (R, G, B
columns). Each row below the input is one stage of the pipeline on the left: change a
number in the kernel grid and every map follows.</p>
<h3>The panels</h3>
<ul>
<li><b>Pipeline</b> (left): the stages, in order. <i>Add conv</i>, <i>Add activation</i>,
<i>Add pool</i> insert after the selected stage; <i>Up</i>/<i>Down</i> reorder; every
change can be undone (Ctrl+Z). Below the list, the selected stage's editor: the kernel
(presets, size, weights, divisor, bias) and the sliding window (stride, padding,
border, dilation).</li>
<li><b>Maps</b> (centre): one column per channel, one row per stage. The last column
recombines the three channel maps into one colour picture (values clipped to 0..1),
as an image editor shows a filtered photo.</li>
<li><b>Explain a pixel</b> (right, opens on a click): where the clicked value comes
from.</li>
</ul>
<h3>Reading a map</h3>
<p>Gray maps run from black (low) to white (high). Maps with negative values use blue
(negative), white (zero) and red (positive); the colour bar at the right of each row
gives the numbers. <i>Clip 1 %</i> lets the 1 % most extreme values saturate so the
rest keeps its contrast; zero stays white. Hover a map to read a value and see the
cell's window on every other map; zoom in (Ctrl+wheel) until the cells show their
numbers.</p>
<h3>The formula header</h3>
<p>Each stage's header gives its output size with your numbers, e.g.
<tt>H = 1 + floor((300 + 2*1 - 3) / 2) = 150</tt>: input size plus padding, minus the
(dilated) kernel span, divided by the stride, plus one. When the division is not
whole, the header says which input cells are never visited.</p>
<h3>An explanation</h3>
<p>Click a cell: the panel shows the input window under the kernel (padding cells
marked), the weights, their products, the sum, the bias, the activation, and for
pooling the window and its winner. Esc clears the selection.</p>
<h3>The CNN tabs</h3>
<p><i>Train a CNN</i> trains a small network on MNIST in numpy, on the same engine;
<i>Inspect the CNN</i> shows every layer's maps for a digit you draw. A right-click on
a learned filter sends it to the pipeline as a new stage.</p>
"""


def shortcut_rows(window) -> list[tuple[str, str]]:
    """(action, keys) for every action of the window that has a shortcut."""
    rows = {}
    for act in window.findChildren(type(window.act_undo)):
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()]
        keys = [k for k in keys if k]
        text = act.text().replace("&", "").rstrip("…").strip()
        if keys and text:
            rows[text] = ", ".join(keys)
    return sorted(rows.items(), key=lambda r: r[0].lower())


def versions() -> dict[str, str]:
    import numpy
    import PIL
    import pyqtgraph
    try:
        import numba
        nb = numba.__version__
    except Exception:  # noqa: BLE001 - optional
        nb = "not installed (numpy fallback)"
    try:
        from importlib.metadata import version
        own = version("convscope")
    except Exception:  # noqa: BLE001 - running from a checkout
        own = "development"
    return {"ConvScope": own, "Python": platform.python_version(), "Qt": QT_VERSION_STR,
            "PyQt6": PYQT_VERSION_STR, "numpy": numpy.__version__,
            "numba": nb, "Pillow": PIL.__version__, "pyqtgraph": pyqtgraph.__version__}


class _TextDialog(QDialog):
    def __init__(self, parent, title: str, html: str):
        super().__init__(parent)
        self.setWindowTitle(title)
        lay = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(html)
        lay.addWidget(self.browser)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        box.rejected.connect(self.reject)
        lay.addWidget(box)
        self.resize(620, 560)


class HelpMenu:
    def __init__(self, window, menu):
        self.window = window
        menu.addAction(window._action("&Guide", self.show_guide, QKeySequence.StandardKey.HelpContents,
                                      "What each panel shows and how to read it"))
        menu.addAction(window._action("&Keyboard shortcuts", self.show_shortcuts, "Ctrl+/"))
        menu.addSeparator()
        menu.addAction(window._action("&About ConvScope", self.show_about))
        self.dialog: _TextDialog | None = None

    def _show(self, title: str, html: str) -> _TextDialog:
        self.dialog = _TextDialog(self.window, title, html)
        self.dialog.setWindowModality(Qt.WindowModality.NonModal)
        self.dialog.show()
        return self.dialog

    def show_guide(self):
        return self._show("ConvScope guide", GUIDE)

    def show_shortcuts(self):
        rows = "".join(f"<tr><td>{a}</td><td><b>{k}</b></td></tr>"
                       for a, k in shortcut_rows(self.window))
        extra = ("<tr><td>Zoom the maps about the pointer</td><td><b>Ctrl+wheel</b></td></tr>"
                 "<tr><td>Fit the maps</td><td><b>double-click a map</b></td></tr>"
                 "<tr><td>Clear the explained cell</td><td><b>Esc</b></td></tr>")
        return self._show("Keyboard shortcuts",
                          f"<h3>Keyboard shortcuts</h3><table cellpadding=4>{rows}{extra}"
                          f"</table>")

    def show_about(self):
        rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in versions().items())
        return self._show("About ConvScope",
                          "<h2>ConvScope</h2><p>See and understand convolution and pooling, "
                          "one number at a time.</p>"
                          f"<table cellpadding=3>{rows}</table>"
                          "<p>MIT licence. Sample photos: CC0 / public domain; MNIST: "
                          "Yann LeCun and Corinna Cortes, CC BY-SA 3.0.</p>")
