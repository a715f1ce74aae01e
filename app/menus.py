"""The main window's menu bar: File, Edit, View, Pipeline, Training, Examples, Help.

Each entry is an action of the window (:meth:`MainWindow._action`), with its shortcut
(listed in Help › Keyboard shortcuts); Edit's undo and redo come from the document's
undo stack, so they are named after the step ("Undo change colormap").
"""

from __future__ import annotations

from PyQt6.QtGui import QKeySequence

from ..core.examples import examples
from .help import HelpMenu

__all__ = ["build_menus"]


def build_menus(win) -> None:
    """The File, Edit, View, Pipeline, Training, Examples and Help menus of ``win`` (its
    actions are also the window's, so their shortcuts work everywhere in it)."""
    mb = win.menuBar()
    fm = mb.addMenu("&File")
    win.act_open = win._action("&Open image…", win.open_dialog, QKeySequence.StandardKey.Open,
                                 "Open an image file")
    fm.addAction(win.act_open)
    win.recent_menu = fm.addMenu("Open &recent")
    win.act_paste = win._action("&Paste image", win.paste, QKeySequence.StandardKey.Paste,
                                  "Paste image data, or a file path, from the clipboard")
    fm.addAction(win.act_paste)
    fm.addSeparator()
    fm.addAction(win._action("&Load pipeline…", win.load_pipeline_dialog, "Ctrl+L"))
    fm.addAction(win._action("&Save pipeline…", win.save_pipeline_dialog,
                              QKeySequence.StandardKey.Save))
    fm.addAction(win._action("Save selected &kernel…", win.save_kernel_dialog))
    fm.addSeparator()
    fm.addAction(win._action("&Export maps (PNG + npy)…", win.export_maps_dialog, "Ctrl+E"))
    fm.addAction(win._action("Export grid as &sheet (PNG, PDF)…", win.export_sheet_dialog,
                              "Ctrl+Shift+E"))
    fm.addSeparator()
    fm.addAction(win._action("&Quit", win.close, QKeySequence.StandardKey.Quit))
    em = mb.addMenu("&Edit")
    win.act_undo = win.history.stack.createUndoAction(win, "&Undo")
    win.act_undo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
    win.act_redo = win.history.stack.createRedoAction(win, "&Redo")
    win.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    for a in (win.act_undo, win.act_redo):
        win.addAction(a)
        em.addAction(a)
    vm = mb.addMenu("&View")
    win.act_fit = win._action("&Fit maps (reset zoom)", lambda: win.grid.reset_view(),
                                "Ctrl+0", "Show every map whole (also: double-click a map)")
    win.act_zoom_in = win._action("Zoom &in", lambda: win.grid.zoom_by(1.5),
                                    QKeySequence.StandardKey.ZoomIn,
                                    "Zoom in on the maps (also: Ctrl+wheel)")
    win.act_zoom_in.setShortcuts([QKeySequence(QKeySequence.StandardKey.ZoomIn),
                                   QKeySequence("Ctrl+=")])
    win.act_zoom_out = win._action("Zoom &out", lambda: win.grid.zoom_by(1 / 1.5),
                                     QKeySequence.StandardKey.ZoomOut,
                                     "Zoom out (also: Ctrl+wheel)")
    for a in (win.act_fit, win.act_zoom_in, win.act_zoom_out):
        vm.addAction(a)
    vm.addSeparator()
    for d, key in ((win.pipeline_dock, "Ctrl+1"), (win.explain_dock, "Ctrl+2"),
                   (win.step_dock, "Ctrl+3")):
        toggle = d.toggleViewAction()
        toggle.setShortcut(QKeySequence(key))
        vm.addAction(toggle)
    vm.addAction(win._action("Reset &layout", win.reset_layout, None,
                              "Show the pipeline editor, hide the empty explanation"))
    pm = mb.addMenu("&Pipeline")
    p = win.panel
    for text, button, key in (
            ("Add &convolution stage", p.add_conv_button, "Ctrl+Shift+C"),
            ("Add &activation stage", p.add_activation_button, "Ctrl+Shift+A"),
            ("Add &pool stage", p.add_pool_button, "Ctrl+Shift+P"),
            ("&Remove stage", p.remove_button, "Ctrl+Shift+Backspace"),
            ("Move stage &up", p.up_button, "Alt+Up"),
            ("Move stage &down", p.down_button, "Alt+Down")):
        pm.addAction(win._action(text, lambda _=False, b=button: b.isEnabled() and b.click(),
                                  key))
    tm = mb.addMenu("&Training")
    tv = win.train_view
    for text, button, key in (("&Start training", tv.start_button, "Ctrl+Shift+T"),
                              ("&Pause / resume training", tv.pause_button, "Ctrl+Shift+Space"),
                              ("S&top training", tv.stop_button, "Ctrl+Shift+X")):
        tm.addAction(win._action(text, lambda _=False, b=button: win._train_button(b),
                                  key))
    xm = mb.addMenu("E&xamples")
    for ex in examples():
        act = xm.addAction(ex.title)
        act.setStatusTip(ex.description)
        act.triggered.connect(lambda _=False, k=ex.key: win.open_example(k))
    win.help_menu = HelpMenu(win, mb.addMenu("&Help"))
    win._update_recent_menu()
