"""Self-checks of the concept inventory, taken before notebook 01 and after notebook 09.

The learner's answers are a function returning ``{question number: letter}``, the numbers and
letters as the form shows them; the key is in ``bnutils.lab.inventory``, never in the
notebook. Before the course the check passes when every question is answered (nobody is
expected to know the answers yet: the inventory measures, and its ✓ line says how many are
right); after the course it passes when every answer is right, and otherwise says which
questions and concepts are not yet.

Introduced in notebook 00.
"""

from __future__ import annotations

from ..lab.inventory import CONCEPTS, form
from ._core import Failed, describe, self_check

__all__ = ["after", "before", "read_answers"]


def _number(key, n: int) -> int:
    """A question number: an int (or a whole-number string such as ``"3"``) in 1..n."""
    if isinstance(key, bool):
        raise Failed(f"question numbers are whole numbers 1 to {n}; got {key!r}")
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key.strip())
    if not isinstance(key, int) and hasattr(key, "__index__"):
        key = int(key.__index__())                     # a NumPy integer
    if not isinstance(key, int):
        raise Failed(f"question numbers are whole numbers 1 to {n}; got {describe(key)} {key!r}")
    if not 1 <= key <= n:
        raise Failed(f"there is no question {key}: the questions are numbered 1 to {n}")
    return key


def _letter(value, number: int, n_choices: int) -> int:
    """A choice letter (``"b"``, ``"B"``, ``" b) "``) as an index into the shown choices."""
    letters = "abcdefgh"[:n_choices]
    if not isinstance(value, str):
        raise Failed(f"the answer to question {number} should be a letter "
                     f"({', '.join(letters)}); got {describe(value)} {value!r}")
    text = value.strip().lower().rstrip(").").strip()
    if len(text) != 1 or text not in letters:
        raise Failed(f"the answer to question {number} should be one of the letters "
                     f"{', '.join(letters)}; got {value!r}")
    return letters.index(text)


def read_answers(name: str, answers) -> dict:
    """``{question number: letter}`` -> ``{question id: index into Question.choices}``.

    Raises ``Failed`` (with the hint a learner sees) for anything that is not such a dict.

    Introduced in notebook 00.
    """
    questions = form(name)
    if answers is None:
        raise Failed("your function returned None; end it with return {1: 'a', 2: 'c', ...}")
    if not isinstance(answers, dict):
        raise Failed(f"return a dict {{question number: letter}}, e.g. {{1: 'a', 2: 'c'}}; got "
                     f"{describe(answers)}")
    chosen = {}
    for key, value in answers.items():
        number = _number(key, len(questions))
        if number in chosen:
            raise Failed(f"question {number} is answered twice")
        fq = questions[number - 1]
        chosen[number] = fq.order[_letter(value, number, len(fq.choices))]
    return {questions[k - 1].question.id: v for k, v in chosen.items()}


def _verdict(name: str, student_fn, need_right: bool) -> str:
    questions = form(name)
    chosen = read_answers(name, student_fn())
    missing = [fq.number for fq in questions if fq.question.id not in chosen]
    if missing:
        raise Failed(f"{len(missing)} of {len(questions)} questions unanswered "
                     f"({', '.join(map(str, missing))}); answer every one")
    wrong = [fq for fq in questions if chosen[fq.question.id] != fq.question.answer]
    if wrong and not need_right:
        return (f"all {len(questions)} answered, {len(questions) - len(wrong)} right; the quiz "
                f"after the course shows the change")
    if wrong:
        concepts = [c for c in CONCEPTS if any(fq.question.concept == c for fq in wrong)]
        raise Failed(f"{len(questions) - len(wrong)} of {len(questions)} right; not yet: "
                     f"questions {', '.join(str(fq.number) for fq in wrong)} "
                     f"({'; '.join(concepts)})")
    if not need_right:
        return f"all {len(questions)} answered, all {len(questions)} right"
    return f"all {len(questions)} right, in all {len(CONCEPTS)} concepts"


@self_check("Concept inventory · before the course")
def before(student_fn):
    """Check the answers to the form taken before notebook 01: every question answered."""
    return _verdict("before", student_fn, need_right=False)


@self_check("Concept inventory · after the course")
def after(student_fn):
    """Check the answers to the form taken after notebook 09: every answer right."""
    return _verdict("after", student_fn, need_right=True)
