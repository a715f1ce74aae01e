"""ConvScope's desktop GUI (PyQt6 + pyqtgraph) over :mod:`core`."""
