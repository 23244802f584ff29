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

A move that needs new backgrounds (a new batch size redraws the axes whose limits and
static artists it changes: ~100-200 ms on a slow laptop) can be prepared ahead: an
explorer hands ``warm`` the settings a learner is likely to pick next (the neighbouring
batch sizes), and while the kernel is idle the figure draws their backgrounds, one
setting per turn of the kernel's event loop, so that the next move finds them stored.

Introduced in notebook 00 (its explorer is the first one built on it).
"""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections import OrderedDict

import numpy as np

__all__ = ["LiveFigure", "encode_png", "neighbours", "nice_limit"]

#: Pixels per inch of the explorers' images (figure sizes are chosen for this).
DPI = 100
#: zlib level of the PNG: 1 encodes several times faster than matplotlib's default 6, for
#: images about as small (flat colours compress well at any level).
PNG_COMPRESS_LEVEL = 1
#: Seconds after the last image shown before an explorer draws ahead (``LiveFigure.warm``):
#: while a learner keeps moving a control, nothing is drawn ahead to keep a move waiting.
WARM_AFTER_S = 0.15
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


def neighbours(options, value) -> list:
    """The options one step to either side of ``value``: what a slider's next move shows.

    The values of a slider an explorer prepares (``LiveFigure.warm``).

    Examples
    --------
    >>> neighbours([2, 4, 8, 16, 32], 8), neighbours([2, 4, 8], 2)
    ([4, 16], [4])
    """
    options = list(options)
    i = options.index(value)
    return [options[j] for j in (i - 1, i + 1) if 0 <= j < len(options)]


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
        self._extents = None      # per axes: what its static artists covered so far
        self._cache = []          # per axes: limits -> stored image of its cell
        self._max_backgrounds = int(backgrounds)
        self._over_static = {}    # id(text) -> (string, limits) -> stored image of the text
        #: Anything besides the axes limits that the static (not dynamic) artists depend
        #: on, e.g. the data a scatter shows; part of every stored image's key.
        self.static_key = None
        self._warm_draw, self._warm_queue = None, []   # see warm()
        self._warm_handle = None
        self._last_show = 0.0
        #: How many settings ``warm`` drew ahead (for tests and benchmarks).
        self.warmed = 0
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

    def warm(self, draw, settings) -> None:
        """Draw ahead, while the kernel is idle, the backgrounds of settings a learner may pick next.

        Parameters
        ----------
        draw : callable
            ``draw(setting)`` sets the figure's artists, limits and ``static_key`` for one
            setting without showing it (the explorer's own update, minus ``show``).
        settings : sequence
            The settings to prepare, the likeliest first (e.g. the neighbouring batch
            sizes at the other controls' current values). Replaces any earlier list.

        In a kernel, one setting is drawn per turn of the kernel's event loop, starting
        ``WARM_AFTER_S`` after the last image shown and pausing while the learner keeps
        moving a control: a move waits at most for the one setting being drawn. Drawing
        ahead only fills the store of backgrounds (the image on screen stays the last one
        shown, and the next move sets every artist again). Outside a kernel (tests,
        scripts) the settings are only queued; ``finish_warm`` draws them at once.
        """
        self._warm_draw, self._warm_queue = draw, list(settings)
        if not self.live or not self._warm_queue or _kernel_shell() is None:
            return
        if self._warm_handle is None:
            self._schedule_warm(WARM_AFTER_S)

    def finish_warm(self) -> int:
        """Draw at once what ``warm`` has queued (as an idle kernel would); returns how many.

        For tests and in-process timings, which run outside a kernel: a redraw timed after
        ``finish_warm`` is what a learner who pauses ``WARM_AFTER_S`` between moves waits for.
        """
        done = 0
        while self._warm_step(quiet=False):
            done += 1
        return done

    def _schedule_warm(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()     # the kernel's loop, in a kernel's callback
        except RuntimeError:
            return
        self._warm_handle = loop.call_later(delay, self._warm_tick)

    def _warm_tick(self) -> None:
        self._warm_handle = None
        idle = time.perf_counter() - self._last_show
        if idle < WARM_AFTER_S:                      # the learner is still moving: wait
            self._schedule_warm(WARM_AFTER_S - idle)
        elif self._warm_step() and self._warm_queue:
            self._schedule_warm(0.0)                 # the next one on a later turn

    def _warm_step(self, quiet: bool = True) -> bool:
        """Draw the backgrounds of the next queued setting; False when none is left.

        ``quiet``: an error stops drawing ahead instead of raising (in the kernel's loop,
        where drawing ahead only saves time: the learner's next move draws anyway).
        """
        if not self._warm_queue or self._blank is None:
            return False
        setting = self._warm_queue.pop(0)
        try:
            self._warm_draw(setting)
            self._backgrounds()
        except Exception:
            self._warm_queue = []
            if not quiet:
                raise
            return False
        self.warmed += 1
        return True

    def _static_extent(self, ax, renderer):
        """What ``ax`` draws but for its dynamic artists (those are drawn over any cell):
        its box, both axes (ticks, labels), a fixed title and its other static artists."""
        from matplotlib.transforms import Bbox

        dynamic = {id(a) for a in self._dynamic}
        parts = [ax.get_window_extent(renderer), ax.xaxis.get_tightbbox(renderer),
                 ax.yaxis.get_tightbbox(renderer)]
        if id(ax.title) not in dynamic and ax.title.get_visible() and ax.title.get_text():
            parts.append(ax.title.get_window_extent(renderer))
        parts += [a.get_tightbbox(renderer) for a in ax.get_default_bbox_extra_artists()
                  if id(a) not in dynamic]
        return Bbox.union([b for b in parts if b is not None and np.isfinite(b.extents).all()
                           and (b.width or b.height)])

    def _layout(self, renderer) -> None:
        """Split the figure into one cell per axes that holds everything it draws.

        An axes' extent is the union of what its static artists (ticks and labels
        included) covered at every setting drawn so far: a wider tick label or a moved
        axis label at a new setting widens it (see ``_backgrounds``). Cell borders lie
        half-way between neighbouring axes' extents. If two axes' extents overlap, one
        cell covers the whole figure (every limit change then redraws all axes).
        """
        from matplotlib.transforms import Bbox

        fig_box = self.fig.bbox
        axes = self.fig.axes
        now = [self._static_extent(ax, renderer) for ax in axes]
        if self._extents is not None:
            now = [Bbox.union([a, b]) for a, b in zip(self._extents, now)]
        self._extents = boxes = now
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

    def _moving_extent(self, ax, renderer):
        """What moves when an axes' limits change, cheaply: each axis label (placed, by the
        draw just made, beyond its tick labels) and offset text; the full axis where a
        label is missing. (``_static_extent`` costs as much as a third of a draw.)"""
        from matplotlib.transforms import Bbox

        parts = [ax.get_window_extent(renderer)]
        for axis in (ax.xaxis, ax.yaxis):
            if axis.label.get_visible() and axis.label.get_text():
                parts.append(axis.label.get_window_extent(renderer))
            else:
                parts.append(axis.get_tightbbox(renderer))
            if axis.offsetText.get_visible() and axis.offsetText.get_text():
                parts.append(axis.offsetText.get_window_extent(renderer))
        return Bbox.union([b for b in parts if b is not None and np.isfinite(b.extents).all()
                           and (b.width or b.height)])

    def _outgrows_its_cell(self, i, renderer) -> bool:
        extent, cell = self._moving_extent(self.fig.axes[i], renderer), self._cells[i]
        fig = self.fig.bbox              # what lies beyond the figure is never drawn
        return (max(extent.x0, fig.x0) < cell.x0 or max(extent.y0, fig.y0) < cell.y0
                or min(extent.x1, fig.x1) > cell.x1 or min(extent.y1, fig.y1) > cell.y1)

    def render(self) -> np.ndarray:
        """Draw the figure; returns its pixels, shape (height, width, 4), RGBA (live mode).

        The first call draws everything once and keeps, for each axes, the image of its
        cell without the dynamic artists, under the axes' limits; a later call reuses that
        image while the limits are the same and redraws only the axes whose limits moved.
        """
        self._backgrounds()
        canvas = self.fig.canvas
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

    def _backgrounds(self) -> None:
        """Put every axes' image without its dynamic artists on the canvas: stored, or drawn and stored."""
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
                        if self._outgrows_its_cell(i, renderer):
                            self._start_over(renderer)
                            return
                        self._store(i, keys[i], cell)
                    else:
                        self._cache[i].move_to_end(keys[i])
                        canvas.restore_region(stored)

    def _start_over(self, renderer) -> None:
        """An axes drew beyond its cell (its stored images would cut it off): widen the
        cells, forget every stored image and draw all axes afresh."""
        canvas = self.fig.canvas
        self._layout(renderer)
        self._cache = [OrderedDict() for _ in self.fig.axes]
        for sprites in self._over_static.values():
            sprites.clear()
        canvas.restore_region(self._blank)
        for ax in self.fig.axes:
            ax.draw(renderer)
        self._store_all()

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
        (``redraw_ms`` in tests/redraw_helpers.py) includes the image the browser receives.
        """
        if not self.live:
            import matplotlib.pyplot as plt

            plt.show()
            return
        self.png = self.to_png()
        self._last_show = time.perf_counter()
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
