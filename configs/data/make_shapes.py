"""Writes shapes/: a tiny image folder for configs/shapes_images.yaml (seeded): one sub-folder per class (circle,
square), 40 PNGs of 24 x 24 pixels each, a shape of random size and place on a noisy background, and one
file that is not an image (shapes/square/notes.png) that the config skips with data.skip_bad_images.
Run: python configs/data/make_shapes.py (numpy only: the PNGs are written by hand with zlib)
"""

import struct
import zlib
from pathlib import Path

import numpy as np


def png(pixels: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an (h, w, 3) uint8 array."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main(per_class: int = 40, size: int = 24, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    root = Path(__file__).with_name("shapes")
    yy, xx = np.mgrid[:size, :size]
    for name in ("circle", "square"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            r = rng.uniform(4, 8)
            cy, cx = rng.uniform(r, size - r, 2)
            inside = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) if name == "circle" else \
                (np.abs(yy - cy) <= r * 0.85) & (np.abs(xx - cx) <= r * 0.85)
            colour = rng.integers(120, 256, 3)
            pixels = rng.integers(0, 60, (size, size, 3))
            pixels[inside] = colour
            (root / name / f"{i:02d}.png").write_bytes(png(pixels.astype(np.uint8)))
    (root / "square" / "notes.png").write_text("not an image: a file a camera export left behind\n")


if __name__ == "__main__":
    main()
