"""bnutils.lab.plots: colours that stay apart for colour-blind readers, a marker and a line
style per method, the ``style`` helper and the course style.

The colour test simulates the three dichromacies with the matrices of Machado, Oliveira
& Fernandes (2009) at severity 1 (applied to linear sRGB, as the ``colorspacious``
package does) and measures the colour difference as the Euclidean distance in CAM02-UCS
(Luo, Cui & Li 2006), computed from CIECAM02 under sRGB viewing conditions (D65 white,
adapting luminance 64/π/5 cd/m², background Y_b = 20, average surround). A ΔE of about
1 is just noticeable; at 10 two lines are told apart at a glance. The implementation
below is checked against ``colorspacious`` when that package is installed.
"""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from bnutils.lab.plots import COLORS, CYCLE, LINESTYLES, MARKERS, style, use_course_style  # noqa: E402

MIN_DELTA_E = 10.0
METHODS = ["plain", "bn", "ln", "gn", "in"]          # the keys that name normalization methods

# --------------------------------------------------------------------------- colour science

# Machado et al. (2009), severity 1.0, for linear sRGB.
MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868],
                   [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968],
                     [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779],
                   [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}
XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986],     # IEC 61966-2-1
                        [-0.9689, 1.8758, 0.0415],
                        [0.0557, -0.2040, 1.0570]])
M_CAT02 = np.array([[0.7328, 0.4296, -0.1624], [-0.7036, 1.6975, 0.0061], [0.0030, 0.0136, 0.9834]])
M_HPE = np.array([[0.38971, 0.68898, -0.07868], [-0.22981, 1.18340, 0.04641], [0.0, 0.0, 1.0]])
WHITE = np.array([95.047, 100.0, 108.883])              # D65, Y = 100
L_A, Y_B, F, C_SURROUND, N_C = 64 / np.pi / 5, 20.0, 1.0, 0.69, 1.0


def linear_srgb(color) -> np.ndarray:
    """A matplotlib colour -> linear-light sRGB in [0, 1], shape (3,)."""
    c = np.asarray(to_rgb(color), dtype=float)
    return np.where(c < 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _adapted(xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """CIECAM02 post-adaptation cone responses R'a G'a B'a of XYZ (Y = 100 for white)."""
    rgb_w = M_CAT02 @ WHITE
    d = np.clip(F * (1 - np.exp((-L_A - 42) / 92) / 3.6), 0, 1)
    rgb_c = (d * WHITE[1] / rgb_w + 1 - d) * (M_CAT02 @ xyz)
    rgb_p = M_HPE @ np.linalg.inv(M_CAT02) @ rgb_c
    k = 1 / (5 * L_A + 1)
    f_l = 0.2 * k**4 * (5 * L_A) + 0.1 * (1 - k**4) ** 2 * (5 * L_A) ** (1 / 3)
    t = (f_l * np.abs(rgb_p) / 100) ** 0.42
    return np.sign(rgb_p) * 400 * t / (t + 27.13) + 0.1, f_l


def cam02_ucs(rgb_linear: np.ndarray) -> np.ndarray:
    """Linear sRGB, shape (3,) -> CAM02-UCS J', a', b', shape (3,)."""
    xyz = 100 * np.linalg.solve(XYZ_TO_SRGB, rgb_linear)
    ra, f_l = _adapted(xyz)
    wa, _ = _adapted(WHITE)
    n = Y_B / WHITE[1]
    z, n_bb = 1.48 + np.sqrt(n), 0.725 * n**-0.2
    achromatic = max((ra @ [2, 1, 1 / 20] - 0.305) * n_bb, 0.0)
    j = 100 * (achromatic / ((wa @ [2, 1, 1 / 20] - 0.305) * n_bb)) ** (C_SURROUND * z)
    a, b = ra @ [1, -12 / 11, 1 / 11], ra @ [1 / 9, 1 / 9, -2 / 9]
    h = np.arctan2(b, a)
    e = 12500 / 13 * N_C * n_bb * (np.cos(h + 2) + 3.8)
    t = e * np.hypot(a, b) / (ra @ [1, 1, 21 / 20])
    m = t**0.9 * np.sqrt(j / 100) * (1.64 - 0.29**n) ** 0.73 * f_l**0.25
    m_ucs = np.log1p(0.0228 * m) / 0.0228
    return np.array([1.7 * j / (1 + 0.007 * j), m_ucs * np.cos(h), m_ucs * np.sin(h)])


def seen(color, deficiency: str | None) -> np.ndarray:
    """Where ``color`` lies in CAM02-UCS for normal vision (None) or a simulated dichromacy."""
    rgb = linear_srgb(color)
    if deficiency is not None:
        rgb = np.asarray(MACHADO[deficiency]) @ rgb
    return cam02_ucs(rgb)


def delta_e(c1, c2, deficiency: str | None = None) -> float:
    """CAM02-UCS colour difference of two colours as seen with ``deficiency``."""
    return float(np.linalg.norm(seen(c1, deficiency) - seen(c2, deficiency)))


def worst_pair(palette: dict, deficiency: str | None) -> tuple[float, str, str]:
    return min((delta_e(palette[a], palette[b], deficiency), a, b)
               for a, b in itertools.combinations(palette, 2))


# --------------------------------------------------------------------------- the palette

DEFICIENCIES = [None, "deuteranopia", "protanopia", "tritanopia"]
# The palette before issue 18 (matplotlib's tab10): fails, which shows the test can fail.
TAB10 = {"plain": "#d62728", "bn": "#1f77b4", "ln": "#2ca02c", "gn": "#9467bd",
         "in": "#8c564b", "other": "#7f7f7f", "theory": "#000000"}


def _course_colours() -> dict:
    """COLORS and the colours use_course_style() gives curves drawn without one."""
    extra = {f"cycle {k}": c for k, c in enumerate(CYCLE)
             if c.lower() not in {v.lower() for v in COLORS.values()}}
    return {**COLORS, **extra}


@pytest.mark.parametrize("deficiency", DEFICIENCIES, ids=str)
def test_every_pair_of_course_colours_stays_apart(deficiency):
    palette = _course_colours()
    close = [(round(delta_e(palette[a], palette[b], deficiency), 1), a, b)
             for a, b in itertools.combinations(palette, 2)
             if delta_e(palette[a], palette[b], deficiency) < MIN_DELTA_E]
    assert not close, f"pairs closer than ΔE {MIN_DELTA_E} for {deficiency or 'normal vision'}: {close}"


def test_the_old_palette_fails_the_same_test():
    """Issue 18's numbers: red vs green falls to ΔE 5.2 for deuteranopes, blue vs purple to
    2.4 for protanopes."""
    assert worst_pair(TAB10, "deuteranopia") == (pytest.approx(5.2, abs=0.05), "plain", "ln")
    assert worst_pair(TAB10, "protanopia") == (pytest.approx(2.4, abs=0.05), "bn", "gn")
    assert worst_pair(TAB10, "tritanopia")[0] >= MIN_DELTA_E      # tab10 was fine for tritanopes


def test_simulation_and_distance_basics():
    assert delta_e("#123456", "#123456", "protanopia") == 0.0
    assert seen("#ffffff", None)[0] == pytest.approx(100.0 * 1.7 / 1.7, abs=0.5)   # J' of white
    assert np.allclose(seen("#000000", None), 0.0)
    for name, m in MACHADO.items():                      # each simulation keeps white white
        assert np.allclose(np.asarray(m) @ np.ones(3), 1.0, atol=1e-5), name
    # a dichromat's red and green collapse; blue and yellow stay far apart for them
    assert delta_e("#ff0000", "#00a000", "deuteranopia") < 0.4 * delta_e("#ff0000", "#00a000")
    assert delta_e("#0000ff", "#ffff00", "deuteranopia") > 60


def test_agrees_with_colorspacious():
    cs = pytest.importorskip("colorspacious")
    rng = np.random.default_rng(0)
    colours = list(COLORS.values()) + list(TAB10.values()) + [tuple(c) for c in rng.random((20, 3))]
    names = {"deuteranopia": "deuteranomaly", "protanopia": "protanomaly", "tritanopia": "tritanomaly"}
    for colour in colours:
        for deficiency in DEFICIENCIES:
            space = ("sRGB1" if deficiency is None else
                     {"name": "sRGB1+CVD", "cvd_type": names[deficiency], "severity": 100})
            expected = cs.cspace_convert(to_rgb(colour), space, "CAM02-UCS")
            assert np.allclose(seen(colour, deficiency), expected, atol=1e-6), (colour, deficiency)


# --------------------------------------------------------------------------- markers, styles

def test_markers_and_line_styles_cover_every_colour_key():
    assert set(MARKERS) == set(COLORS) == set(LINESTYLES)


def test_each_method_has_its_own_marker_and_line_style():
    assert len({MARKERS[m] for m in METHODS}) == len(METHODS)
    assert len({str(LINESTYLES[m]) for m in METHODS}) == len(METHODS)
    assert len({str(v) for v in LINESTYLES.values()}) == len(LINESTYLES)


def test_styles_are_valid_matplotlib_values():
    fig, ax = plt.subplots()
    for key in COLORS:
        (line,) = ax.plot([0, 1, 2], [0, 1, 0], **style(key), label=key)
        assert line.get_color() == COLORS[key]
        assert line.get_marker() == (MARKERS[key] or "None")
    plt.close(fig)


def test_style_returns_colour_marker_and_line_style():
    assert style("bn") == {"color": COLORS["bn"], "marker": "o", "linestyle": "-"}
    assert style("theory") == {"color": "#000000", "linestyle": LINESTYLES["theory"]}
    assert style("plain", marker=False, lw=1) == {"color": COLORS["plain"], "linestyle": "--", "lw": 1}
    assert style("ln", linestyle="-")["linestyle"] == "-"                 # overrides win


def test_style_returns_a_new_dict_each_time():
    s = style("gn")
    s["color"] = "red"
    assert style("gn")["color"] == COLORS["gn"]


def test_style_rejects_unknown_methods():
    with pytest.raises(ValueError, match=r"method must be one of .*'bn'.*got 'batchnorm'"):
        style("batchnorm")
    with pytest.raises(TypeError, match="method must be a str"):
        style(None)


def test_course_style_cycles_through_the_palette():
    with plt.rc_context():
        use_course_style()
        fig, ax = plt.subplots()
        colours = [ax.plot([0, 1])[0].get_color() for _ in range(3)]
        plt.close(fig)
    assert colours == [COLORS["bn"], COLORS["plain"], COLORS["ln"]]


# --------------------------------------------------------------------------- library figures

def _sweep(values, acc):
    from bnutils.lab.sweeps import SweepResult

    acc = np.asarray(acc, dtype=float)
    return SweepResult("lr", list(values), tuple(range(acc.shape[1])), acc, np.ones_like(acc),
                       np.zeros_like(acc, dtype=bool))


def test_plot_sweeps_tells_the_lines_apart_without_colour():
    from bnutils.lab.sweeps import plot_sweeps

    fig, ax = plt.subplots()
    plot_sweeps(ax, {"no BN": _sweep([0.1, 1.0], [[0.9], [0.8]]), "BN": _sweep([0.1, 1.0], [[0.9], [0.9]]),
                     "LN": _sweep([0.1, 1.0], [[0.7], [0.6]])}, colors={"LN": "#123456"})
    plain, bn, other = ax.lines
    assert (plain.get_color(), plain.get_marker(), plain.get_linestyle()) == (COLORS["plain"], "s", "--")
    assert (bn.get_color(), bn.get_marker(), bn.get_linestyle()) == (COLORS["bn"], "o", "-")
    assert other.get_color() == "#123456"                  # a colour given by label still wins
    assert len({(ln.get_marker(), ln.get_linestyle()) for ln in ax.lines}) == 3
    plt.close(fig)


def test_plot_figure1_tells_with_and_without_bn_apart_without_colour():
    from types import SimpleNamespace

    from bnutils.lab.figure1 import plot_figure1

    def run(scale):
        steps = np.arange(0, 101, 10)
        history = SimpleNamespace(eval_steps=list(steps), test_accuracy=list(np.linspace(0.1, scale, 11)))
        return SimpleNamespace(history=history, steps=steps,
                               percentiles=np.outer(np.ones(11), [-scale, 0.0, scale]))

    fig = plot_figure1(run(0.5), run(0.9))
    plain, bn = fig.axes[0].lines
    assert plain.get_marker() != bn.get_marker() and plain.get_linestyle() != bn.get_linestyle()
    plt.close(fig)


def test_plot_excess_loss_gives_each_curve_its_own_line_style():
    from bnutils.scaling import gradient_descent
    from bnutils.widgets.scaling import plot_excess_loss

    X = np.random.default_rng(0).standard_normal((50, 2))
    y = X @ [1.0, -2.0]
    runs = {name: gradient_descent(X * s, y, lr=0.1) for name, s in (("a", 1.0), ("b", 0.5), ("c", 2.0))}
    fig, ax = plt.subplots()
    plot_excess_loss(ax, runs)
    curves = ax.lines[:3]
    assert len({str(line.get_linestyle()) for line in curves}) == 3
    assert "--" not in {line.get_linestyle() for line in curves}      # the tolerance line's style
    plt.close(fig)
