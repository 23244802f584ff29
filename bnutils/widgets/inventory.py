"""The concept inventory's quiz: one radio group per question, scored when the learner asks.

The widget holds the questions and their choices, never the key: the right answers stay in
``bnutils.lab.inventory`` in the kernel and are looked up only when "Score my answers" is
pressed. Every answer starts unset. Scoring shows, per question, whether it was right and the
section of the course that teaches it (after the course also the right answer and why), a
result per concept, the answers as code for the graded cell, and saves them next to the
notebook (``inventory_<form>.json``, never a course file) so that the form after the course
can show the change.

Introduced in notebook 00.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import ipywidgets as widgets

from ..lab.inventory import FORMS, QUESTIONS, form, letter, score

__all__ = ["Quiz", "inventory_quiz", "saved_answers_path"]


def saved_answers_path(name: str, folder=".") -> Path:
    """Where the answers to form ``name`` are saved: ``<folder>/inventory_<name>.json``.

    Introduced in notebook 00.
    """
    if name not in FORMS:
        raise ValueError(f"name must be one of {FORMS}, got {name!r}")
    return Path(folder) / f"inventory_{name}.json"


def _read_saved(path: Path) -> dict:
    """The saved ``{question id: choice index}``; ValueError if the file is not one."""
    data = json.loads(path.read_text(encoding="utf-8"))
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, dict):
        raise ValueError("it holds no answers")
    by_id = {q.id: q for q in QUESTIONS}
    return {k: v for k, v in choices.items()
            if k in by_id and isinstance(v, int) and not isinstance(v, bool)
            and 0 <= v < len(by_id[k].choices)}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class Quiz(widgets.VBox):
    """The quiz of one form; ``score()`` is what the button runs.

    Attributes
    ----------
    form : str
    questions : list of ipywidgets.RadioButtons
        One per question in the form's order, options the letters, value None until chosen.
    button : ipywidgets.Button
    feedback : ipywidgets.HTMLMath
        What scoring shows.
    result : dict or None
        What the last ``score()`` returned.

    Introduced in notebook 00.
    """

    def __init__(self, name: str, folder=".", compare_with: str | None = None):
        self.form = name
        self.folder = Path(folder)
        self.compare_with = compare_with
        self._form = form(name)
        self.questions = []
        rows = []
        for fq in self._form:
            choices = "".join(f"<li><b>{letter(k)})</b> {_esc(text)}</li>"
                              for k, text in enumerate(fq.choices))
            rows.append(widgets.HTML(f"<p><b>{fq.number}.</b> {_esc(fq.question.text)}</p>"
                                     f"<ul style='list-style:none'>{choices}</ul>"))
            radio = widgets.RadioButtons(options=[letter(k) for k in range(len(fq.choices))],
                                         value=None, description=f"answer {fq.number}",
                                         style={"description_width": "initial"},
                                         layout=widgets.Layout(flex_flow="row", width="auto"))
            self.questions.append(radio)
            rows.append(radio)
        self.button = widgets.Button(description="Score my answers", button_style="primary",
                                     tooltip="score the answers chosen so far")
        self.feedback = widgets.HTMLMath("")        # section titles may hold $...$
        self.result = None
        self.button.on_click(lambda _: self.score())
        super().__init__([*rows, self.button, self.feedback])

    def __repr__(self) -> str:
        # short: the notebook stores it as the cell's text output (nbval compares it)
        return (f"Quiz(form={self.form!r}, questions={len(self.questions)}, "
                f"answered={len(self.choices())})")

    def choices(self) -> dict:
        """``{question id: index into Question.choices}`` of the questions answered."""
        return {fq.question.id: fq.order[radio.index]
                for fq, radio in zip(self._form, self.questions) if radio.index is not None}

    def answers(self) -> dict:
        """``{question number: letter}``, as the graded cell takes them."""
        return {fq.number: radio.value for fq, radio in zip(self._form, self.questions)
                if radio.value is not None}

    def score(self) -> dict:
        """Score the chosen answers, show the feedback, save them; return the numbers shown.

        A fault of the quiz (a file it cannot write, a saved file it cannot read) is reported
        as the quiz's, never counted against the answers.
        """
        try:
            result = self._score()
        except Exception as exc:  # the quiz's own fault: say so, blame no answer
            self.result = {"error": f"{type(exc).__name__}: {exc}"}
            self.feedback.value = (f"<p>The quiz could not score your answers: a fault in the "
                                   f"quiz, not in your answers ({_esc(self.result['error'])}).</p>")
            return self.result
        self.result = result
        return result

    def _score(self) -> dict:
        chosen = self.choices()
        result = score(self.form, chosen)
        right = set(result["right"])
        reveal = self.form == "after"        # before the course: which, not what, is right
        lines = []
        for fq in self._form:
            q = fq.question
            where = (f"<a href='{_esc(q.link)}' target='_blank'>notebook {q.notebook[:2]}, "
                     f"{_esc(q.section.lstrip('# '))}</a>")
            mark = "✓" if q.id in right else ("–" if q.id not in chosen else "✗")
            line = f"{mark} <b>{fq.number}.</b> "
            line += "unanswered" if q.id not in chosen else ("right" if q.id in right else "not right")
            line += f"; taught in {where}"
            if reveal:
                line += (f"<br>&nbsp;&nbsp;&nbsp;answer {fq.answer_letter}) "
                         f"{_esc(q.choices[q.answer])} {_esc(q.explanation)}")
            lines.append(f"<li>{line}</li>")
        concept_rows = "".join(f"<tr><td>{_esc(c)}</td><td>{r} of {n}</td></tr>"
                               for c, (r, n) in result["concepts"].items())
        shown = {"form": self.form, "right": len(right), "answered": len(chosen),
                 "total": len(self._form), "concepts": result["concepts"],
                 "answers": self.answers(), "saved": None, "saved_error": None, "compare": None}
        parts = [f"<p><b>{len(right)} of {len(self._form)} right</b> "
                 f"({len(chosen)} answered).</p>",
                 f"<table><tr><th>concept</th><th>right</th></tr>{concept_rows}</table>",
                 f"<ul style='list-style:none'>{''.join(lines)}</ul>",
                 f"<p>Your answers as code, for the graded cell below: "
                 f"<code>{_esc(repr(shown['answers']))}</code></p>"]
        path = saved_answers_path(self.form, self.folder)
        try:
            data = {"form": self.form, "choices": chosen,
                    "concepts": {c: list(v) for c, v in result["concepts"].items()}}
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
            shown["saved"] = str(path)
            parts.append(f"<p>Saved to <code>{_esc(path.name)}</code> next to this notebook.</p>")
        except OSError as exc:
            shown["saved_error"] = str(exc)
            parts.append(f"<p>Your result is above, but saving it to <code>{_esc(path.name)}"
                         f"</code> failed ({_esc(str(exc))}), so it cannot be compared later.</p>")
        if self.compare_with:
            compare, text = self._change(result)
            shown["compare"] = compare
            parts.append(text)
        self.feedback.value = "".join(parts)
        return shown

    def _change(self, result: dict):
        """The change per concept from the saved answers of the other form."""
        path = saved_answers_path(self.compare_with, self.folder)
        if not path.exists():
            return None, (f"<p>No answers saved from the inventory before the course "
                          f"(<code>{_esc(path.name)}</code>) in this folder, so there is no "
                          f"change to show.</p>")
        try:
            earlier = score(self.compare_with, _read_saved(path))
        except (OSError, ValueError) as exc:
            return None, (f"<p>The answers saved in <code>{_esc(path.name)}</code> could not be "
                          f"read ({_esc(str(exc))}); the change is left out. Your answers "
                          f"above are scored as usual.</p>")
        compare = {c: (earlier["concepts"][c][0], result["concepts"][c][0], n)
                   for c, (_, n) in result["concepts"].items()}
        rows = "".join(f"<tr><td>{_esc(c)}</td><td>{b} of {n}</td><td>{a} of {n}</td>"
                       f"<td>{a - b:+d}</td></tr>" for c, (b, a, n) in compare.items())
        total_b = sum(v[0] for v in compare.values())
        total_a = sum(v[1] for v in compare.values())
        return compare, (f"<p><b>Before the course {total_b}, now {total_a} of "
                         f"{len(QUESTIONS)} right.</b></p><table><tr><th>concept</th>"
                         f"<th>before</th><th>now</th><th>change</th></tr>{rows}</table>")


def inventory_quiz(name: str, folder=".") -> Quiz:
    """The quiz of form ``name`` ("before" or "after"); "after" also shows the change from
    the saved "before" answers.

    Parameters
    ----------
    name : {"before", "after"}
    folder : str or Path
        Where the answers are saved and looked for (the notebook's folder by default).

    Introduced in notebook 00.
    """
    if name not in FORMS:
        raise ValueError(f"name must be one of {FORMS}, got {name!r}")
    return Quiz(name, folder, compare_with="before" if name == "after" else None)

