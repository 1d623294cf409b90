"""Confusion matrices drawn as a PNG with NumPy and zlib alone (no plotting library needed).

One panel per model: rows are the true classes, columns the predicted ones; a cell's colour is
its share of the row (recall), its number the pixel count. Text uses a built-in 5 x 7 pixel
font (digits, letters, a few signs; lower case is drawn as upper case, other characters as
``?``).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from stgeo_kd._atomic import write_bytes_atomic

_GLYPHS = {
    "0": "01110 10001 10011 10101 11001 10001 01110", "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111", "3": "11110 00001 00001 01110 00001 00001 11110",
    "4": "00010 00110 01010 10010 11111 00010 00010", "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110", "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110", "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001", "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110", "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111", "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111", "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110", "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001", "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001", "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110", "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101", "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110", "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110", "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010", "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 01010 00100 00100 00100 00100", "Z": "11111 00001 00010 00100 01000 10000 11111",
    " ": "00000 00000 00000 00000 00000 00000 00000", "-": "00000 00000 00000 11111 00000 00000 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100", ":": "00000 01100 01100 00000 01100 01100 00000",
    "(": "00010 00100 01000 01000 01000 00100 00010", ")": "01000 00100 00010 00010 00010 00100 01000",
    "_": "00000 00000 00000 00000 00000 00000 11111", "/": "00001 00010 00010 00100 01000 01000 10000",
    "=": "00000 00000 11111 00000 11111 00000 00000", ",": "00000 00000 00000 00000 01100 00100 01000",
    "%": "11001 11010 00010 00100 01000 01011 10011", "+": "00000 00100 00100 11111 00100 00100 00000",
    "?": "01110 10001 00001 00010 00100 00000 00100",
}
_FONT = {ch: np.array([[c == "1" for c in row] for row in rows.split()], dtype=bool) for ch, rows in _GLYPHS.items()}
CW, CH = 6, 8  # character cell, pixels (5 x 7 glyph + spacing)


def text_width(text: str, scale: int = 1) -> int:
    return len(text) * CW * scale


def draw_text(img: np.ndarray, text: str, x: int, y: int, color=(0, 0, 0), scale: int = 1) -> None:
    """Draw ``text`` with its top-left corner at (x, y); clipped at the image's edges."""
    for i, ch in enumerate(text):
        glyph = _FONT.get(ch.upper(), _FONT["?"])
        if scale > 1:
            glyph = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        gx, gy = x + i * CW * scale, y
        h, w = glyph.shape
        y0, y1, x0, x1 = max(gy, 0), min(gy + h, img.shape[0]), max(gx, 0), min(gx + w, img.shape[1])
        if y1 <= y0 or x1 <= x0:
            continue
        sub = glyph[y0 - gy : y1 - gy, x0 - gx : x1 - gx]
        img[y0:y1, x0:x1][sub] = color


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (8-bit RGB, no filtering)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _shade(share: float) -> tuple[int, int, int]:
    """White (0) to dark blue (1)."""
    lo, hi = np.array([247, 251, 255]), np.array([8, 48, 107])
    return tuple(int(v) for v in np.round(lo + (hi - lo) * float(np.clip(share, 0, 1))))


def confusion_png(panels: list[tuple[str, np.ndarray]], names: list[str], path: str | Path, cell: int = 44) -> Path:
    """Write one PNG with a confusion-matrix panel per ``(title, (K, K) counts)``; rows true,
    columns predicted. Returns the path (written atomically)."""
    k = len(names)
    labels = [n[:14] for n in names]
    left = max(text_width(s) for s in labels) + 16
    top = 3 * CH + 10
    pw = left + k * cell + 24
    ph = top + k * cell + 2 * CH + 16
    img = np.full((ph, pw * len(panels), 3), 255, dtype=np.uint8)
    for p, (title, cm) in enumerate(panels):
        ox = p * pw
        draw_text(img, title[: (pw - 8) // CW], ox + 4, 4)
        draw_text(img, "true (rows) x predicted (cols)", ox + 4, 4 + CH + 2, color=(90, 90, 90))
        cm = np.asarray(cm, dtype=np.int64)
        rows = cm.sum(axis=1)
        for i in range(k):
            draw_text(img, labels[i], ox + 4, top + i * cell + (cell - CH) // 2)
            for j in range(k):
                x0, y0 = ox + left + j * cell, top + i * cell
                share = cm[i, j] / rows[i] if rows[i] else 0.0
                color = _shade(share)
                img[y0 + 1 : y0 + cell, x0 + 1 : x0 + cell] = color
                s = str(int(cm[i, j]))
                ink = (255, 255, 255) if share > 0.5 else (0, 0, 0)
                draw_text(img, s, x0 + (cell - text_width(s)) // 2, y0 + (cell - CH) // 2, color=ink)
            img[top + i * cell, ox + left : ox + left + k * cell] = 200
        for j in range(k):
            s = str(j + 1)
            draw_text(img, s, ox + left + j * cell + (cell - text_width(s)) // 2, top - CH - 2, color=(90, 90, 90))
        # column numbers refer to the row names in order
        key = "cols: " + " ".join(f"{j + 1}={labels[j][:6]}" for j in range(k))
        draw_text(img, key[: (pw - 8) // CW], ox + 4, top + k * cell + 6, color=(90, 90, 90))
    return write_bytes_atomic(path, encode_png(img))
