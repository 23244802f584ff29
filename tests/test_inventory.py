"""The concept inventory: its questions, the cells that back them, its two forms, its
self-check, and its quiz widget in process (notebooks 00_test_yourself_before and
99_test_yourself_after)."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bnutils.checks import inventory as check
from bnutils.lab import inventory
from bnutils.lab.inventory import CONCEPTS, FORMS, QUESTIONS, form, score
from bnutils.widgets import inventory as quiz_module
from bnutils.widgets.inventory import inventory_quiz, saved_answers_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BEFORE, AFTER = NOTEBOOKS / "00_test_yourself_before.ipynb", NOTEBOOKS / "99_test_yourself_after.ipynb"


def _key(name):
    return {fq.number: fq.answer_letter for fq in form(name)}


def _read(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


# --------------------------------------------------------------------------- the questions

def test_the_inventory_has_between_15_and_25_questions_with_unique_ids():
    assert 15 <= len(QUESTIONS) <= 25
    ids = [q.id for q in QUESTIONS]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q.id)
def test_each_question_has_one_right_answer_among_distinct_choices(q):
    assert q.concept in CONCEPTS
    assert len(q.choices) == 4 and len(set(q.choices)) == 4
    assert 0 <= q.answer < len(q.choices)
    assert q.explanation and q.text.strip()


def test_every_concept_has_at_least_two_questions():
    for concept in CONCEPTS:
        assert sum(q.concept == concept for q in QUESTIONS) >= 2, concept


def test_the_right_answers_are_spread_over_the_letters():
    """No letter is right so often that "always c" would score well."""
    for name in FORMS:
        letters = [fq.answer_letter for fq in form(name)]
        assert max(letters.count(x) for x in "abcd") <= len(letters) // 2, (name, letters)


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q.id)
def test_each_answer_is_backed_by_a_cell_whose_output_shows_it(q):
    """The question names a notebook, a section heading there and a code cell whose stored
    output holds the text the answer rests on."""
    nb = _read(q.notebook)
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("#")]
    assert q.section in headings, f"{q.id}: no heading {q.section!r} in {q.notebook}"
    cells = {c.get("id"): c for c in nb.cells}
    assert q.cell in cells, f"{q.id}: no cell {q.cell!r} in {q.notebook}"
    cell = cells[q.cell]
    assert cell.cell_type == "code", f"{q.id}: cell {q.cell} is not a code cell"
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    text += "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
    for evidence in q.evidence:
        assert evidence in text, f"{q.id}: cell {q.cell} of {q.notebook} does not print {evidence!r}"
    # the cell sits in the section the link names (after its heading, before the next one)
    order = [c.get("id") for c in nb.cells]
    heading_at = next(i for i, c in enumerate(nb.cells)
                      if c.cell_type == "markdown" and q.section in c.source.splitlines())
    assert order.index(q.cell) > heading_at, f"{q.id}: cell {q.cell} is above its section"


def test_the_backing_check_can_fail():
    """The evidence test above would see a question whose cell does not print its evidence."""
    q = dataclasses.replace(QUESTIONS[0], evidence=("a line no cell prints",))
    with pytest.raises(AssertionError, match="does not print"):
        test_each_answer_is_backed_by_a_cell_whose_output_shows_it(q)


def test_links_use_the_section_anchors():
    q = next(q for q in QUESTIONS if q.id == "eps")
    assert q.link == "03_batchnorm_forward.ipynb#3.-ε:-why,-and-where"


# --------------------------------------------------------------------------- the two forms

def test_the_two_forms_hold_the_same_questions_in_different_orders():
    before, after = form("before"), form("after")
    assert sorted(fq.question.id for fq in before) == sorted(q.id for q in QUESTIONS)
    assert sorted(fq.question.id for fq in after) == sorted(q.id for q in QUESTIONS)
    assert [fq.question.id for fq in before] != [fq.question.id for fq in after]
    assert [fq.number for fq in before] == list(range(1, len(QUESTIONS) + 1))
    moved = sum(b.order != a.order for b in before
                for a in after if a.question.id == b.question.id)
    assert moved >= len(QUESTIONS) // 2       # the choices are shuffled too
    for fq in before:
        assert sorted(fq.order) == list(range(len(fq.question.choices)))
        assert fq.choices[ord(fq.answer_letter) - ord("a")] == fq.question.choices[fq.question.answer]


def test_the_order_is_fixed_on_every_machine():
    """SHA-256 of the form and the id, not Python's hash or a NumPy stream: the same order in
    any process (a fresh interpreter with another hash seed)."""
    code = ("from bnutils.lab.inventory import form; "
            "print([fq.question.id for fq in form('before')], [fq.order for fq in form('after')])")
    here = f"{[fq.question.id for fq in form('before')]} {[fq.order for fq in form('after')]}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin"})
    assert out.stdout.strip() == here


def test_a_form_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="form must be one of"):
        form("middle")
    with pytest.raises(ValueError, match="name must be one of"):
        inventory_quiz("middle")
    with pytest.raises(ValueError, match="unknown question ids"):
        score("before", {"no_such_question": 0})


def test_score_counts_per_concept():
    right = {q.id: q.answer for q in QUESTIONS}
    result = score("after", right)
    assert len(result["right"]) == len(QUESTIONS)
    assert sum(n for _, n in result["concepts"].values()) == len(QUESTIONS)
    wrong = dict(right, eps=(right["eps"] + 1) % 4)
    assert score("after", wrong)["concepts"]["the forward pass"][0] == \
        result["concepts"]["the forward pass"][0] - 1


# --------------------------------------------------------------------------- the self-check

@pytest.mark.parametrize("name", FORMS)
def test_the_check_passes_on_the_key_and_accepts_it_written_differently(name):
    chk = getattr(check, name)
    key = _key(name)
    for answers in (key, {str(k): v.upper() for k, v in key.items()},
                    {k: f" {v}) " for k, v in key.items()}):
        fn = eval(f"lambda: {answers!r}")                     # a literal, as a learner types it
        result = chk.evaluate(fn)
        assert result.passed, result.message
        n = len(QUESTIONS)
        assert (f"all {n} answered, all {n} right" if name == "before" else f"all {n} right") \
            in result.message


def test_before_the_course_every_answer_counts_and_the_line_says_how_many_are_right():
    key = _key("before")
    wrong = dict(key, **{str(k): ("a" if key[k] != "a" else "b") for k in (1, 2)})
    del wrong[1], wrong[2]
    result = check.before.evaluate(eval(f"lambda: {wrong!r}"))
    assert result.passed, result.message
    assert f"all {len(QUESTIONS)} answered, {len(QUESTIONS) - 2} right" in result.message
    n = len(QUESTIONS)
    assert f"all {n} answered, all {n} right" in check.before.evaluate(eval(f"lambda: {key!r}")).message


def test_after_the_course_the_check_says_what_is_wrong_without_the_right_letters():
    key = _key("after")
    wrong = dict(key)
    first = form("after")[0]
    wrong[1] = "a" if key[1] != "a" else "b"
    result = check.after.evaluate(eval(f"lambda: {wrong!r}"))
    assert not result.passed
    assert f"{len(QUESTIONS) - 1} of {len(QUESTIONS)} right" in result.message
    assert "questions 1 " in result.message and first.question.concept in result.message
    assert first.question.explanation not in result.message


@pytest.mark.parametrize("answers, hint", [
    (None, "returned None"),
    ([("1", "a")], "return a dict"),
    ({1: "a"}, "unanswered"),
    ({0: "a"}, "no question 0"),
    ({True: "a"}, "whole numbers"),
    ({1.5: "a"}, "whole numbers"),
    ({1: "e"}, "one of the letters a, b, c, d"),
    ({1: 2}, "should be a letter"),
    ({1: "a", "1": "b"}, "answered twice"),
])
def test_the_check_names_the_problem_of_a_malformed_answer(answers, hint):
    result = check.before.evaluate(eval(f"lambda: {answers!r}"))
    assert not result.passed
    assert hint in result.message, result.message
    assert "not your fault" not in result.message


def test_one_forms_key_fails_the_other_form():
    result = check.after.evaluate(eval(f"lambda: {_key('before')!r}"))
    assert not result.passed and "right; not yet" in result.message


def test_the_stub_is_not_done_yet():
    def my_answers():
        raise NotImplementedError("Exercise 0.2: your answers")
    assert "not done yet" in check.before.evaluate(my_answers).message


# --------------------------------------------------------------------------- the quiz widget

def _widget_state(w) -> str:
    """Every widget's state under ``w``, as the browser receives it."""
    seen, states, todo = set(), [], [w]
    while todo:
        x = todo.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        states.append(x.get_state())
        todo.extend(getattr(x, "children", ()))
        todo.extend(v for v in vars(x).values() if hasattr(v, "get_state"))
    # model ids differ between two quizzes; what they hold must not
    return re.sub(r"IPY_MODEL_\w+", "IPY_MODEL", json.dumps(states, sort_keys=True, default=str))


@pytest.mark.parametrize("name", FORMS)
def test_every_answer_starts_unset_and_the_widget_state_holds_no_key(name, tmp_path, monkeypatch):
    quiz = inventory_quiz(name, tmp_path)
    assert len(quiz.questions) == len(QUESTIONS)
    assert all(r.value is None and r.index is None for r in quiz.questions)
    assert all(r.options == ("a", "b", "c", "d") and r.description for r in quiz.questions)
    assert repr(quiz) == f"Quiz(form={name!r}, questions={len(QUESTIONS)}, answered=0)"
    state = _widget_state(quiz)
    assert not any(q.explanation in state for q in QUESTIONS)
    # the same quiz with every answer moved to another choice: the browser sees the same
    moved = tuple(dataclasses.replace(q, answer=(q.answer + 1) % 4) for q in QUESTIONS)
    monkeypatch.setattr(inventory, "QUESTIONS", moved)
    assert _widget_state(inventory_quiz(name, tmp_path)) == state
    assert not list(tmp_path.iterdir())                      # nothing saved before scoring


def _choose(quiz, key, skip=()):
    for fq, radio in zip(quiz._form, quiz.questions):
        if fq.number not in skip:
            radio.value = key[fq.number]


def test_scoring_before_the_course_says_which_not_what_is_right(tmp_path):
    quiz = inventory_quiz("before", tmp_path)
    key = _key("before")
    _choose(quiz, key, skip=(2,))
    quiz.questions[0].value = "a" if key[1] != "a" else "b"
    quiz.button.click()
    result = quiz.result
    n = len(QUESTIONS)
    assert (result["right"], result["answered"], result["total"]) == (n - 2, n - 1, n)
    assert f"{n - 2} of {n} right" in quiz.feedback.value
    assert "unanswered" in quiz.feedback.value and "not right" in quiz.feedback.value
    assert not any(q.explanation in quiz.feedback.value for q in QUESTIONS)
    assert "03_batchnorm_forward.ipynb#3.-ε:-why,-and-where" in quiz.feedback.value
    assert result["answers"] == {k: v for k, v in quiz.answers().items()}
    assert repr(result["answers"]) in quiz.feedback.value.replace("&#x27;", "'")
    saved = json.loads(saved_answers_path("before", tmp_path).read_text())
    assert saved["form"] == "before" and len(saved["choices"]) == n - 1
    # what the quiz prints for the graded cell is what the check grades
    assert not check.before.evaluate(eval(f"lambda: {result['answers']!r}")).passed
    _choose(quiz, key)
    assert check.before.evaluate(eval(f"lambda: {quiz.score()['answers']!r}")).passed


def test_after_the_course_the_quiz_explains_and_shows_the_change(tmp_path):
    before = inventory_quiz("before", tmp_path)
    key_before = _key("before")
    _choose(before, key_before, skip=tuple(range(1, 11)))      # 10 unanswered
    before.score()
    after = inventory_quiz("after", tmp_path)
    _choose(after, _key("after"))
    result = after.score()
    assert all(html.escape(q.explanation, quote=True) in after.feedback.value for q in QUESTIONS)
    n = len(QUESTIONS)
    assert f"Before the course {n - 10}, now {n} of {n} right." in after.feedback.value
    assert sum(b for b, _, _ in result["compare"].values()) == n - 10
    assert all(a == total for _, a, total in result["compare"].values())


def test_after_without_saved_answers_or_with_a_damaged_file(tmp_path):
    after = inventory_quiz("after", tmp_path)
    _choose(after, _key("after"))
    assert after.score()["compare"] is None
    assert "No answers saved from the inventory before the course" in after.feedback.value
    saved_answers_path("before", tmp_path).write_text("{not json", encoding="utf-8")
    result = after.score()
    assert result["compare"] is None and result["right"] == len(QUESTIONS)
    assert "could not be read" in after.feedback.value
    assert "are scored as usual" in after.feedback.value


def test_a_fault_of_the_quiz_is_never_blamed_on_the_answers(tmp_path, monkeypatch):
    quiz = inventory_quiz("before", tmp_path)
    _choose(quiz, _key("before"))

    def broken(*args):
        raise KeyError("internal")
    monkeypatch.setattr(quiz_module, "score", broken)
    result = quiz.score()
    assert "error" in result
    assert "a fault in the quiz, not in your answers" in quiz.feedback.value
    assert "not right" not in quiz.feedback.value


def test_a_folder_that_cannot_be_written_keeps_the_score(tmp_path):
    quiz = inventory_quiz("before", tmp_path / "missing" / "folder")
    _choose(quiz, _key("before"))
    result = quiz.score()
    assert result["right"] == len(QUESTIONS) and result["saved"] is None and result["saved_error"]
    assert "saving it to" in quiz.feedback.value


def test_the_saved_answers_are_never_a_tracked_file():
    for name in FORMS:
        path = f"notebooks/{saved_answers_path(name).name}"
        out = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert out.returncode == 0, f"{path} is not ignored by git"


# --------------------------------------------------------------------------- the notebooks

def test_the_inventory_notebooks_open_and_close_the_course():
    from tools import _notebooks

    names = [p.name for p in _notebooks.discover()]
    assert names[:2] == ["00_start_here.ipynb", BEFORE.name]
    assert names[-1] == AFTER.name
    assert names.index("01_feature_scaling.ipynb") == 2


@pytest.mark.parametrize("path, name", [(BEFORE, "before"), (AFTER, "after")], ids=FORMS)
def test_the_notebook_takes_its_form_and_its_solution_is_the_key(path, name):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'inventory_quiz("{name}")' in code and f"check.{name}(my_answers)" in code
    cell = next(c for c in nb.cells if "### BEGIN SOLUTION" in c.source)
    solution = cell.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    assert eval(solution.strip().removeprefix("return")) == _key(name)
    shown = [o for c in nb.cells for o in c.get("outputs", ())
             if "Quiz(" in o.get("data", {}).get("text/plain", "")]
    assert [o["data"]["text/plain"] for o in shown] == [
        f"Quiz(form={name!r}, questions={len(QUESTIONS)}, answered=0)"]


def test_the_student_edition_holds_no_key(tmp_path):
    from tools import make_student

    assert make_student.build([BEFORE, AFTER], tmp_path, log=lambda *a: None) == []
    for path in (BEFORE, AFTER):
        text = (tmp_path / path.name).read_text(encoding="utf-8")
        student = nbformat.reads(text, as_version=4)
        cell = next(c for c in student.cells if "def my_answers" in c.source)
        assert "raise NotImplementedError(" in cell.source and "return {" not in cell.source
        assert not re.search(r"Quiz\(form=", text)            # outputs cleared


def test_the_static_site_shows_the_questions_and_no_key():
    """tools/build_html.py draws a widget from its stored state: the quiz's shows every
    question and its choices, disabled, and nothing of the key."""
    from tools import build_html

    quiz = inventory_quiz("before")
    state, todo = {}, [quiz]
    while todo:
        w = todo.pop()
        state[w.model_id] = {"model_name": w.get_state()["_model_name"], "state": w.get_state()}
        todo.extend(getattr(w, "children", ()))
    page = build_html.widget_html(state, quiz.model_id)
    assert all(html.escape(fq.question.text, quote=True) in page for fq in form("before"))
    assert page.count("<select disabled") == len(QUESTIONS) and "Score my answers" in page
    assert not any(html.escape(q.explanation, quote=True) in page for q in QUESTIONS)
