"""Before Qt starts on Linux: are the system libraries of Qt's X11 plugin there?

On a bare Debian or Ubuntu, PyQt6's wheels bring Qt but not the X11 client libraries
its ``xcb`` platform plugin links to. Qt then aborts with a message that names only
``xcb-cursor0``, although several more are missing (``libxcb-icccm4`` and
``libxcb-keysyms1`` among them). This module tries to load each of them (``dlopen``,
no Qt involved) and names the packages of all that are missing, with the one
``apt-get`` line that installs them all.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: shared library -> Debian/Ubuntu package, for Qt 6's xcb platform plugin
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libdbus-1.so.3": "libdbus-1-3",
}

#: the README's line: everything Qt's window needs on a bare Debian/Ubuntu
APT_LINE = "sudo apt-get install " + " ".join(sorted(set(XCB_LIBRARIES.values())))


def uses_xcb(environ=os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will pick its X11 (xcb) plugin here."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").strip().lower()
    if chosen:
        return chosen.startswith("xcb")
    # Qt 6 prefers Wayland where a compositor runs, else X11
    return not environ.get("WAYLAND_DISPLAY")


def missing_packages(load=ctypes.CDLL) -> list[str]:
    """Packages whose libraries could not be loaded (sorted, without duplicates)."""
    missing = set()
    for lib, package in XCB_LIBRARIES.items():
        try:
            load(lib)
        except OSError:
            missing.add(package)
    return sorted(missing)


def report(missing: list[str]) -> str:
    return ("convscope: the window cannot open: Qt's X11 plugin needs system libraries "
            f"that are not installed ({', '.join(missing)}).\n"
            "On Debian or Ubuntu, install them with:\n"
            f"    sudo apt-get install {' '.join(missing)}\n"
            "(everything Qt needs on a bare system: " + APT_LINE + ")")
