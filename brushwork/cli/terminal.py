"""Two images side by side in a 24-bit-colour terminal, for rating pairs without a browser.

Each character cell shows two pixels, one above the other: the upper half block '▀' in the top
pixel's colour on a background of the bottom pixel's.
"""

from __future__ import annotations

from PIL import Image, ImageOps

UPPER_HALF = "\u2580"
RESET = "\x1b[0m"


def side_by_side(left: Image.Image, right: Image.Image, columns: int = 80, gap: int = 2) -> str:
    """ANSI text of ``left`` and ``right``, each ``(columns - gap) // 2`` characters wide."""
    width = max(4, (columns - gap) // 2)
    height = width  # pixels; two per text row, so the tiles come out about square in most fonts
    tiles = [ImageOps.pad(img.convert("RGB"), (width, height), color=(0, 0, 0)) for img in (left, right)]
    lines = []
    for y in range(0, height, 2):
        cells = []
        for tile in tiles:
            for x in range(width):
                top = tile.getpixel((x, y))
                bottom = tile.getpixel((x, y + 1)) if y + 1 < height else (0, 0, 0)
                cells.append(f"\x1b[38;2;{top[0]};{top[1]};{top[2]}m\x1b[48;2;{bottom[0]};{bottom[1]};{bottom[2]}m"
                             f"{UPPER_HALF}")  # fmt: skip
            cells.append(RESET + " " * gap)
        lines.append("".join(cells).rstrip() + RESET)
    return "\n".join(lines)
