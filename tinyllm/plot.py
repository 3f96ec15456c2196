"""A loss-curve PNG with no plotting library: lines rasterised into a NumPy image, saved with zlib.

Enough for a training run's curves (train and validation loss against step), readable at a glance.
"""
import struct
import zlib

import numpy as np

from .atomic import atomic_path

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def _png_bytes(image):
    """Encode an (H, W, 3) uint8 image as PNG."""
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))  # filter type 0 per row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _draw_line(image, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    for dy in (0, 1):  # two pixels thick
        image[np.clip(ys + dy, 0, image.shape[0] - 1), np.clip(xs, 0, image.shape[1] - 1)] = color


def plot_curves(path, curves, width=800, height=480, margin=40):
    """Draw each (steps, values) series of `curves` (a dict name -> (xs, ys)) into a PNG at path.

    Axes span all the data; light grid lines mark quarters of each range. The legend is the color
    order of `curves` (blue, red, green, purple), which the caller states in its own output.
    """
    image = np.full((height, width, 3), 255, np.uint8)
    series = [(np.asarray(xs, float), np.asarray(ys, float)) for xs, ys in curves.values() if len(xs)]
    if not series:
        return
    x_all = np.concatenate([s[0] for s in series])
    y_all = np.concatenate([s[1] for s in series])
    y_all = y_all[np.isfinite(y_all)]
    x_lo, x_hi = x_all.min(), max(x_all.max(), x_all.min() + 1)
    y_lo, y_hi = (y_all.min(), y_all.max()) if y_all.size else (0.0, 1.0)
    y_hi = max(y_hi, y_lo + 1e-6)
    to_px = lambda x, y: (margin + (x - x_lo) / (x_hi - x_lo) * (width - 2 * margin),
                          height - margin - (y - y_lo) / (y_hi - y_lo) * (height - 2 * margin))
    for q in np.linspace(0, 1, 5):
        gx, gy = int(margin + q * (width - 2 * margin)), int(height - margin - q * (height - 2 * margin))
        image[margin:height - margin, gx] = 225
        image[gy, margin:width - margin] = 225
    for (xs, ys), color in zip(series, COLORS):
        keep = np.isfinite(ys)
        pts = [to_px(x, y) for x, y in zip(xs[keep], ys[keep])]
        for (a, b), (c, d) in zip(pts, pts[1:]):
            _draw_line(image, a, b, c, d, color)
        if len(pts) == 1:
            _draw_line(image, *pts[0], *pts[0], color)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_png_bytes(image))
