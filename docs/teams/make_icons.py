"""Draw the Teams app icons (``color.png`` 192x192, ``outline.png`` 32x32) with the standard library.

Run ``python docs/teams/make_icons.py`` to redraw them next to this file. The mark is a hand-off
arrow: a bar and an arrow head pointing right. Teams wants the colour icon on a solid background
and the outline icon white on transparent (https://learn.microsoft.com/microsoftteams/platform/
concepts/build-and-test/apps-package#app-icons).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLUE = (0x2F, 0x6F, 0xDE, 0xFF)
WHITE = (0xFF, 0xFF, 0xFF, 0xFF)
CLEAR = (0, 0, 0, 0)


def png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int, int]]) -> bytes:
    """An 8-bit RGBA PNG of ``pixel(x, y)``."""
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def arrow(u: float, v: float) -> bool:
    """The mark in unit coordinates (0..1 both ways): a bar from the left, a head to the right."""
    bar = 0.18 <= u <= 0.60 and 0.42 <= v <= 0.58
    head = 0.55 <= u <= 0.84 and abs(v - 0.5) <= (0.84 - u) * 0.95
    return bar or head


def color(x: int, y: int, size: int = 192) -> tuple[int, int, int, int]:
    return WHITE if arrow((x + 0.5) / size, (y + 0.5) / size) else BLUE


def outline(x: int, y: int, size: int = 32) -> tuple[int, int, int, int]:
    return WHITE if arrow((x + 0.5) / size, (y + 0.5) / size) else CLEAR


def main() -> None:
    (HERE / "color.png").write_bytes(png(192, 192, color))
    (HERE / "outline.png").write_bytes(png(32, 32, outline))


if __name__ == "__main__":
    main()
