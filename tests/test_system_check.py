"""The start-up check for the system libraries of Qt's X11 plugin (no Qt involved)."""

from convscope.app.system_check import APT_LINE, XCB_LIBRARIES, missing_packages, report, uses_xcb


def test_missing_libraries_are_all_named_with_one_apt_line():
    absent = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"}

    def load(name):
        if name in absent:
            raise OSError(f"{name}: cannot open shared object file")

    missing = missing_packages(load)
    assert missing == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"]
    text = report(missing)
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in text
    assert APT_LINE in text
    assert missing_packages(lambda name: None) == []


def test_the_check_applies_to_x11_only():
    assert uses_xcb({}, "linux")
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not uses_xcb({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not uses_xcb({}, "darwin") and not uses_xcb({}, "win32")


def test_readme_names_the_same_packages():
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert APT_LINE in readme
    assert set(XCB_LIBRARIES.values()) <= set(APT_LINE.split())
