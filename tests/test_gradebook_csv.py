"""tools/gradebook_csv.py on the CSV nbgrader's own exporter writes (nbgrader export's
CsvExportPlugin, on a gradebook made with nbgrader's API): Moodle and Canvas gradebooks,
names and emails from nbgrader's student table, blanks refused by student id."""

from __future__ import annotations

import csv
import os
import sysconfig
from pathlib import Path

import pytest

from tools import gradebook_csv

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore::Warning")


def _export(tmp_path, monkeypatch, students):
    """grades.csv as `nbgrader export` writes it: assignments 03 (2 + 3 points) and 04 (3),
    ada submitted both (03 with 4 of 5 after a 1-point late penalty, 04 with 3), bob 03 (2)."""
    pytest.importorskip("nbgrader")
    monkeypatch.setenv("PATH", sysconfig.get_path("scripts") + os.pathsep + os.environ.get("PATH", ""))
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin

    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        for name, cells in (("03_batchnorm_forward", {"test_bn_forward": 2, "test_output_stats": 3}),
                            ("04_batchnorm_backward", {"test_bn_backward": 3})):
            gb.add_assignment(name)
            gb.add_notebook(name, name)
            for cell, points in cells.items():
                gb.add_grade_cell(cell, name, name, max_score=points, cell_type="code")
        for sid, fields in students.items():
            gb.add_student(sid, **fields)
        submissions = (("03_batchnorm_forward", "ada", {"test_bn_forward": 2, "test_output_stats": 3}),
                       ("04_batchnorm_backward", "ada", {"test_bn_backward": 3}),
                       ("03_batchnorm_forward", "bob", {"test_bn_forward": 2, "test_output_stats": 0}))
        for name, sid, scores in submissions:
            submission = gb.add_submission(name, sid)
            for cell, score in scores.items():
                gb.find_grade(cell, name, name, sid).auto_score = score
            if (name, sid) == ("03_batchnorm_forward", "ada"):
                submission.notebooks[0].late_submission_penalty = 1.0
            gb.db.commit()
        plugin = CsvExportPlugin()
        plugin.to = str(tmp_path / "grades.csv")
        plugin.export(gb)
    return tmp_path / "grades.csv"


NAMED = {"ada": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"},
         "bob": {"first_name": "Bob", "last_name": "Noyce", "email": "bob@example.org"}}


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_moodle_and_canvas_gradebooks_from_nbgrader_export(tmp_path, monkeypatch, capsys):
    export = _export(tmp_path, monkeypatch, NAMED)
    assert _read(export)[0] == list(gradebook_csv.NBGRADER_COLUMNS)
    assert gradebook_csv.main([str(export), "--lms", "moodle", "-o", str(tmp_path / "m.csv")]) == 0
    assert _read(tmp_path / "m.csv") == [
        ["First name", "Last name", "Email address", "03_batchnorm_forward", "04_batchnorm_backward"],
        ["Ada", "Lovelace", "ada@example.org", "4", "3"],
        ["Bob", "Noyce", "bob@example.org", "2", "0"]]
    assert gradebook_csv.main([str(export), "--lms", "canvas", "-o", str(tmp_path / "c.csv")]) == 0
    assert _read(tmp_path / "c.csv") == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "03_batchnorm_forward",
         "04_batchnorm_backward"],
        ["Points Possible", "", "", "", "", "5", "3"],
        ["Lovelace, Ada", "", "", "ada", "", "4", "3"],
        ["Noyce, Bob", "", "", "bob", "", "2", "0"]]
    assert "2 students, 2 assignments" in capsys.readouterr().out


def test_students_missing_from_the_student_table_are_named(tmp_path, monkeypatch, capsys):
    export = _export(tmp_path, monkeypatch, {"ada": NAMED["ada"], "bob": {}})   # autograde adds bob blank
    assert gradebook_csv.main([str(export), "--lms", "moodle", "-o", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err
    assert "1 student(s) without first_name, last_name, email" in err and ": bob;" in err
    assert "nbgrader db student add" in err and not (tmp_path / "m.csv").exists()


def test_a_file_that_is_not_an_export_is_refused(tmp_path, capsys):
    path = tmp_path / "grades.csv"
    path.write_text("name,score\nada,3\n")
    assert gradebook_csv.main([str(path), "--lms", "canvas", "-o", str(tmp_path / "c.csv")]) == 1
    assert "not an nbgrader export (no column assignment" in capsys.readouterr().err
