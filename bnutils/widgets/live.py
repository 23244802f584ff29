"""A figure that an explorer builds once and redraws in place, sent to the browser as a PNG.

What a learner waits for after moving a slider is mostly matplotlib drawing the figure
(axes, ticks, labels: the text) and encoding it as a PNG, not the callback's numbers.
``LiveFigure`` keeps one figure per explorer and draws its unchanging part once: the
artists marked ``dynamic`` (bars, lines, titles and readouts that move with the sliders)
are left out of a full draw, whose image is kept as a background; a redraw then copies
the background and draws only the dynamic artists on top (matplotlib's blitting). A
background belongs to the axes limits it was drawn with, so the limits are part of its
key: an explorer that keeps its limits on a few fixed values (``nice_limit``) redraws
almost every move from a stored background. The PNG is encoded with fast compression.

Introduced in notebook 00 (its explorer is the first one built on it).
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict

import numpy as np

__all__ = ["LiveFigure", "encode_png", "nice_limit"]

#: Pixels per inch of the explorers' images (figure sizes are chosen for this).
DPI = 100
#: zlib level of the PNG: 1 encodes several times faster than matplotlib's default 6, for
#: images about as small (flat colours compress well at any level).
PNG_COMPRESS_LEVEL = 1
#: The upper limits ``nice_limit`` rounds to (times a power of ten).
_NICE = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_limit(value: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 4, 5, 6, 8 (times a power of ten) that is ``>= value``.

    Explorers set the upper y limit of a histogram to ``nice_limit(1.3 * tallest bar)``
    instead of the bar itself, so the limits (and hence the stored backgrounds) repeat.

    Examples
    --------
    >>> nice_limit(13), nice_limit(0.21), nice_limit(40)
    (15.0, 0.3, 40.0)
    """
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"value must be a positive finite number, got {value}")
    scale = 10.0 ** np.floor(np.log10(value))
    for step in _NICE:
        if step * scale >= value * (1 - 1e-12):
            return float(f"{step * scale:.6g}")        # 0.3, not 0.30000000000000004
    return float(10.0 * scale)   # unreachable: 10 * scale > value


class LiveFigure:
    """One explorer's figure, redrawn in place and shown as a PNG.

    Parameters
    ----------
    figsize : (float, float)
        Inches, at ``DPI`` pixels per inch.
    live : bool, optional
        True (an explorer): dynamic artists are drawn over a stored background and
        ``show`` displays a PNG. False (a notebook's static figure): the figure is managed
        by pyplot and ``show`` is ``plt.show()``, exactly as any other course figure.
    backgrounds : int, optional
        How many images of each axes (one per pair of limits) to keep.

    Attributes
    ----------
    fig : matplotlib Figure
    static_key : hashable
        Set it to what the static artists show, when that can change (default None).
    png : bytes or None
        The last image ``show`` made (live mode).
    """

    def __init__(self, figsize, live: bool = True, backgrounds: int = 12):
        self.live = bool(live)
        self.png = None
        self._dynamic = []
        self._blank = None        # the figure without its axes
        self._cells = None        # per axes: the pixels it draws into (see _layout)
        self._cache = []          # per axes: limits -> stored image of its cell
        self._max_backgrounds = int(backgrounds)
        self._over_static = {}    # id(text) -> (string, limits) -> stored image of the text
        #: Anything besides the axes limits that the static (not dynamic) artists depend
        #: on, e.g. the data a scatter shows; part of every stored image's key.
        self.static_key = None
        if self.live:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            # Not known to pyplot: the inline backend neither shows nor closes it.
            self.fig = Figure(figsize=figsize, dpi=DPI)
            FigureCanvasAgg(self.fig)
        else:
            import matplotlib.pyplot as plt

            self.fig = plt.figure(figsize=figsize)

    def dynamic(self, artist, over_static: bool = False):
        """Mark ``artist`` as changing with the sliders (drawn on every redraw); returns it.

        ``over_static=True`` is for a text (a title, a readout) that no other dynamic
        artist overlaps: its image is then kept per string and axes limits, and a text
        that did not change is copied instead of drawn (drawing text is most of a redraw).
        """
        if self.live:
            artist.set_animated(True)
        self._dynamic.append(artist)
        if over_static:
            self._over_static[id(artist)] = OrderedDict()
        return artist

    def undynamic(self, artist) -> None:
        """Forget a dynamic artist (before removing it from the figure)."""
        self._dynamic = [a for a in self._dynamic if a is not artist]
        self._over_static.pop(id(artist), None)

    def _layout(self, renderer) -> None:
        """Split the figure into one cell per axes that holds everything it draws.

        Cell borders lie half-way between neighbouring axes' drawn extents (ticks and
        labels included). If two axes' extents overlap, one cell covers the whole figure
        (every limit change then redraws all axes).
        """
        from matplotlib.transforms import Bbox

        fig_box = self.fig.bbox
        axes = self.fig.axes
        boxes = [ax.get_tightbbox(renderer) for ax in axes]
        cells = []
        for a in boxes:
            x0, x1, y0, y1 = fig_box.x0, fig_box.x1, fig_box.y0, fig_box.y1
            for b in boxes:
                if b is a:
                    continue
                beside = b.y0 < a.y1 and a.y0 < b.y1          # the extents share a row
                above_below = b.x0 < a.x1 and a.x0 < b.x1     # ... or a column
                if beside and above_below:
                    self._cells = None
                    return
                if beside and b.x1 <= a.x0:
                    x0 = max(x0, (b.x1 + a.x0) / 2)
                if beside and b.x0 >= a.x1:
                    x1 = min(x1, (a.x1 + b.x0) / 2)
                if above_below and b.y1 <= a.y0:
                    y0 = max(y0, (b.y1 + a.y0) / 2)
                if above_below and b.y0 >= a.y1:
                    y1 = min(y1, (a.y1 + b.y0) / 2)
            cells.append(Bbox([[np.floor(x0), np.floor(y0)], [np.ceil(x1), np.ceil(y1)]]))
        self._cells = cells

    def render(self) -> np.ndarray:
        """Draw the figure; returns its pixels, shape (height, width, 4), RGBA (live mode).

        The first call draws everything once and keeps, for each axes, the image of its
        cell without the dynamic artists, under the axes' limits; a later call reuses that
        image while the limits are the same and redraws only the axes whose limits moved.
        """
        canvas = self.fig.canvas
        axes = self.fig.axes
        if self._blank is None:
            for ax in axes:
                ax.set_visible(False)
            canvas.draw()                             # the figure's own, static artists
            self._blank = canvas.copy_from_bbox(self.fig.bbox)
            for ax in axes:
                ax.set_visible(True)
            canvas.draw()
            self._layout(canvas.get_renderer())
            self._cache = [OrderedDict() for _ in axes]
            self._store_all()
        else:
            canvas.restore_region(self._blank)
            renderer = canvas.get_renderer()
            keys = self._keys()
            if self._cells is None:                    # one cell: all axes at once
                stored = self._cache[0].get(keys)
                if stored is None:
                    for ax in axes:
                        ax.draw(renderer)
                    self._store(0, keys, self.fig.bbox)
                else:
                    self._cache[0].move_to_end(keys)
                    canvas.restore_region(stored)
            else:
                for i, (ax, cell) in enumerate(zip(axes, self._cells)):
                    stored = self._cache[i].get(keys[i])
                    if stored is None:
                        ax.draw(renderer)
                        self._store(i, keys[i], cell)
                    else:
                        self._cache[i].move_to_end(keys[i])
                        canvas.restore_region(stored)
        renderer = canvas.get_renderer()
        for artist in sorted(self._dynamic, key=lambda a: a.get_zorder()):
            if not artist.get_visible():
                continue
            sprites = self._over_static.get(id(artist))
            if sprites is None:
                artist.draw(renderer)
                continue
            key = (artist.get_text(), self._axes_key(artist))
            sprite = sprites.get(key)
            if sprite is not None:
                canvas.restore_region(sprite)
                continue
            artist.draw(renderer)
            if artist.get_text().strip():
                box = artist.get_window_extent(renderer).padded(2)
                sprites[key] = canvas.copy_from_bbox(box)
                while len(sprites) > 4 * self._max_backgrounds:
                    sprites.popitem(last=False)
        return np.asarray(canvas.buffer_rgba())

    def _axes_key(self, artist):
        ax = artist.axes
        return None if ax is None else (self.static_key, ax.get_xlim(), ax.get_ylim())

    def _keys(self):
        keys = tuple((self.static_key, ax.get_xlim(), ax.get_ylim()) for ax in self.fig.axes)
        return keys

    def _store(self, i, key, bbox) -> None:
        cache = self._cache[i]
        cache[key] = self.fig.canvas.copy_from_bbox(bbox)
        while len(cache) > self._max_backgrounds:
            cache.popitem(last=False)

    def _store_all(self) -> None:
        keys = self._keys()
        if self._cells is None:
            self._store(0, keys, self.fig.bbox)
        else:
            for i, cell in enumerate(self._cells):
                self._store(i, keys[i], cell)

    def to_png(self) -> bytes:
        """The figure as PNG bytes (see ``encode_png``)."""
        return encode_png(self.render()[..., :3])

    def show(self) -> None:
        """Show the figure: a PNG in the explorer's output area (live) or ``plt.show()``.

        The PNG is made even outside a kernel, so that an in-process timing
        (``bnutils.widgets.median_redraw_ms``) includes the image the browser receives.
        """
        if not self.live:
            import matplotlib.pyplot as plt

            plt.show()
            return
        self.png = self.to_png()
        shell = _kernel_shell()
        if shell is not None:
            from IPython.display import Image, display

            display(Image(data=self.png, format="png"))


def encode_png(rgb: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """Encode an image as PNG: no row filter, zlib ``level`` (fast; flat colours compress well).

    Parameters
    ----------
    rgb : ndarray of uint8, shape (height, width, 3)

    About half the time of PIL's encoder at its fastest level, for the same size: the
    course's figures are flat colours, which PNG's row filters do not make smaller.

    Examples
    --------
    >>> encode_png(np.zeros((2, 3, 3), np.uint8))[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be a uint8 array of shape (height, width, 3), got "
                         f"{rgb.dtype} {rgb.shape}")
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), np.uint8)     # each row: filter byte 0, pixels
    rows[:, 1:] = rgb.reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + chunk(b"IEND", b""))


def _kernel_shell():
    """The running IPython kernel's shell, or None (plain Python, pytest)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None
