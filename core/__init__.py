"""ConvScope's engine: numpy only (plus Pillow for files), never Qt."""
