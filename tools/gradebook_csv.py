"""Turn nbgrader's grade export into a gradebook CSV a learning platform imports.

    nbgrader export                                     # writes grades.csv (nbgrader's format)
    python tools/gradebook_csv.py grades.csv --lms moodle -o moodle.csv
    python tools/gradebook_csv.py grades.csv --lms canvas -o canvas.csv

``nbgrader export`` writes one row per assignment and student (columns ``assignment,
duedate, timestamp, student_id, last_name, first_name, email, raw_score,
late_submission_penalty, score, max_score``). A platform wants one row per student and
one column per assignment. This script writes that, with the score after nbgrader's late
penalty (``score``):

* ``moodle``: ``First name, Last name, Email address``, then one column per assignment.
  Moodle's "Import grades > CSV file" maps the rows to its users by a column you choose:
  map *Email address* to *email address*, and each assignment column to its grade item.
* ``canvas``: Canvas's gradebook columns ``Student, ID, SIS User ID, SIS Login ID,
  Section``, then one column per assignment, and a ``Points Possible`` row. nbgrader's
  student id goes into *SIS Login ID* (make it the learner's login when adding them);
  Canvas matches a row by ID, SIS User ID or SIS Login ID, so ID stays empty.

Names and emails come from nbgrader's student table, which autograding does not fill
in: add every learner before exporting, e.g. ``nbgrader db student add ada
--first-name Ada --last-name Lovelace --email ada@example.org`` or ``nbgrader db student
import students.csv`` (columns ``id, first_name, last_name, email``). A learner the
platform needs to match but the table leaves blank (an email for Moodle, names for both)
stops the script with their ids, so no row is silently left unmatched.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

#: The columns of ``nbgrader export`` (nbgrader.plugins.export.CsvExportPlugin).
NBGRADER_COLUMNS = ("assignment", "duedate", "timestamp", "student_id", "last_name", "first_name",
                    "email", "raw_score", "late_submission_penalty", "score", "max_score")
LMS = ("moodle", "canvas")
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_COLUMNS = ("First name", "Last name", "Email address")


class GradebookError(ValueError):
    """The export cannot be turned into a gradebook; the message says what to do."""


def read_export(path: Path) -> list[dict]:
    """The rows of an ``nbgrader export`` CSV, checked for nbgrader's columns."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in NBGRADER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GradebookError(f"{path} is not an nbgrader export (no column {', '.join(missing)}); "
                                 f"make it with `nbgrader export`")
        return list(reader)


def _number(text: str) -> str:
    value = float(text or 0.0)
    return f"{value:g}"


def gradebook(rows: list[dict], lms: str) -> list[list[str]]:
    """The gradebook table (header first) for ``lms``, one row per student."""
    if lms not in LMS:
        raise GradebookError(f"lms must be one of {', '.join(LMS)}, not {lms!r}")
    assignments = list(dict.fromkeys(r["assignment"] for r in rows))
    students: dict[str, dict] = {}
    for r in rows:
        student = students.setdefault(r["student_id"], {"row": r, "scores": {}})
        student["scores"][r["assignment"]] = _number(r["score"])
    needed = ("first_name", "last_name", "email") if lms == "moodle" else ("first_name", "last_name")
    blank = sorted(sid for sid, s in students.items() if any(not s["row"][k].strip() for k in needed))
    if blank:
        raise GradebookError(
            f"{len(blank)} student(s) without {', '.join(needed)} in nbgrader's student table: "
            f"{', '.join(blank)}; add them (nbgrader db student add ID --first-name ... --last-name ... "
            f"--email ...) and run nbgrader export again")
    max_scores = {r["assignment"]: _number(r["max_score"]) for r in rows}
    if lms == "moodle":
        table = [[*MOODLE_COLUMNS, *assignments]]
        for _, s in sorted(students.items()):
            r = s["row"]
            table.append([r["first_name"], r["last_name"], r["email"],
                          *(s["scores"].get(a, "") for a in assignments)])
        return table
    table = [[*CANVAS_COLUMNS, *assignments],
             ["Points Possible", "", "", "", "", *(max_scores[a] for a in assignments)]]
    for sid, s in sorted(students.items()):
        r = s["row"]
        table.append([f"{r['last_name']}, {r['first_name']}", "", "", sid, "",
                      *(s["scores"].get(a, "") for a in assignments)])
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path, help="the CSV nbgrader export wrote (grades.csv)")
    parser.add_argument("--lms", choices=LMS, required=True, help="the platform's gradebook format")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the gradebook CSV to write")
    args = parser.parse_args(argv)
    try:
        table = gradebook(read_export(args.export), args.lms)
    except GradebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(table)
    print(f"wrote {args.out}: {len(table) - (2 if args.lms == 'canvas' else 1)} students, "
          f"{len(table[0]) - len(CANVAS_COLUMNS if args.lms == 'canvas' else MOODLE_COLUMNS)} assignments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
