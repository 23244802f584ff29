"""docs/instructor-guide.md says only what the course shows.

Its session plan covers every notebook it has a section for once, in order, with the course
map's times (README.md); the ten lectures 00-09 have a section each; every decimal number and percentage in a
notebook's section is one that notebook's stored outputs print; every quoted self-check
message (“…”) is one a check in ``bnutils/checks/`` prints; every exercise it names exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "instructor-guide.md"


def _title(path: Path) -> str:
    """A notebook's first heading, e.g. "03 · The BN forward pass"."""
    for cell in nbformat.read(path, as_version=4).cells:
        m = re.search(r"^# (.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if m:
            return m.group(1).strip()
    return path.stem


#: title -> notebook, for every notebook (two may share a number: 00 · Start here and a quiz)
NOTEBOOKS = {_title(p): p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?\s?%)")
#: "section 5.2", "Exercises 3.1 to 3.3", "sections 4 and 5.2": references, not results
REFERENCE = re.compile(r"\b(?:[Ss]ections?|Exercises?) \d+(?:\.\d+)?(?:(?:,| and| to) \d+(?:\.\d+)?)*")


def _guide_sections() -> dict[str, str]:
    text = GUIDE.read_text(encoding="utf-8")
    parts = re.split(r"^## (\d\d · .*)$", text, flags=re.M)
    return {parts[k]: parts[k + 1] for k in range(1, len(parts), 2)}


def _outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    chunks = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            chunks.append(out.get("text", ""))
            for mime in ("text/plain", "text/html", "text/markdown"):
                chunks.append(out.get("data", {}).get(mime, ""))
    return "\n".join(c if isinstance(c, str) else "".join(c) for c in chunks)


def _course_map_minutes() -> dict[str, int]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    # keyed by "NN · title": two notebooks share the number 00 (00 · Start here and the
    # inventory's 00 · Test yourself: before the course)
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\| \[(\d\d · [^\]]*)\][^|]*\|[^|]*\| (\d+) min \|$", readme, re.M)}


def test_each_section_is_a_notebook_and_the_ten_lectures_have_one():
    sections = _guide_sections()
    assert set(sections) <= set(NOTEBOOKS), set(sections) - set(NOTEBOOKS)
    assert {t[:2] for t in sections} >= {f"{k:02d}" for k in range(10)}


def test_the_session_plan_covers_every_notebook_with_the_course_map_times():
    text = GUIDE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d) \| (.*?) \| (.*?) \|$", text, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)) and rows
    planned = [(nb.strip(), int(t)) for _, names, times in rows
               for nb, t in zip(re.findall(r"(\d\d · [^,]+)", names), re.findall(r"(\d+)", times),
                                strict=True)]
    course = _course_map_minutes()
    assert [nb[:2] for nb, _ in planned] == sorted(t[:2] for t in _guide_sections())
    assert {nb: course.get(nb) for nb, _ in planned} == dict(planned)
    total = sum(t for _, t in planned)
    assert f"come to {total} minutes, {total - 60 * 2 * len(rows)} more than" in text


def _printed(outputs: str) -> tuple[set[float], set[float]]:
    """Every number the outputs print, and those printed as a percentage."""
    numbers, percents = set(), set()
    for m in re.finditer(r"(?<![\w.])(\d+(?:\.\d+)?)(\s?%)?", outputs):
        (percents if m.group(2) else numbers).add(float(m.group(1)))
    return numbers, percents


def _quoted_as(value: str, printed: set[float]) -> bool:
    """``value`` ("0.67", "67") is a printed number, rounded to the digits ``value`` shows."""
    digits = len(value.split(".")[1]) if "." in value else 0
    return any(abs(round(p, digits) - float(value)) < 1e-9 for p in printed)


@pytest.mark.parametrize("title", sorted(_guide_sections()))
def test_numbers_in_a_section_are_printed_by_its_notebook(title):
    """A quoted number may round a printed one (67 % for a printed 67.30 %), never more."""
    section = REFERENCE.sub("", _guide_sections()[title])
    numbers, percents = _printed(_outputs_text(NOTEBOOKS[title]))
    missing = []
    for value in set(NUMBER.findall(section)):
        if value.endswith("%"):
            ok = _quoted_as(value.rstrip("% "), percents)
        else:
            ok = _quoted_as(value, numbers)
        if not ok:
            missing.append(value)
    assert not missing, f"notebook {title}'s outputs do not print {sorted(missing)}"


def _checks_source() -> str:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bnutils" / "checks").glob("*.py"))
    # Implicit concatenation of string literals across lines: "abc "\n    f"def" -> "abc def"
    return re.sub(r"\"\s*\n\s*f?\"", "", source)


def test_quoted_self_check_messages_are_real():
    text = GUIDE.read_text(encoding="utf-8")
    quotes = [re.sub(r"\s+", " ", q) for q in re.findall(r"“([^”]+)”", text)]
    assert len(quotes) >= 20
    source = _checks_source()
    missing = [q for q in quotes if q not in source]
    assert not missing, f"not printed by any check in bnutils/checks/: {missing}"


def test_named_exercises_exist():
    markdown = "\n".join(c.source for p in NOTEBOOKS.values()
                         for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown")
    named = set(re.findall(r"Exercises? (\d+\.\d+)", GUIDE.read_text(encoding="utf-8")))
    assert named and not [n for n in named if f"Exercise {n}" not in markdown]
