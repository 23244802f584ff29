"""nbgrader settings for the course (README, "For instructors").

`make nbgrader` (tools/nbgrader_course.py) builds an nbgrader course directory, by
default nbgrader/ in the repository, with one assignment per notebook, and copies this
file into it. nbgrader reads it from the directory it is started in and from the course
directory, so the commands work from the repository root and from the course directory:

    .venv/bin/nbgrader generate_assignment 03_batchnorm_forward
    .venv/bin/nbgrader autograde 03_batchnorm_forward
"""

import os

c = get_config()  # noqa: F821 (nbgrader defines get_config when it reads this file)

here = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(here, "bnutils")):
    # This is the copy in the repository root: the course directory is nbgrader/.
    c.CourseDirectory.root = os.path.join(here, "nbgrader")

c.CourseDirectory.course_id = "batchnorm"

# The stub nbgrader writes in place of a solution region: the same words as the student
# edition's (tools/make_student.py adds the exercise's name).
c.ClearSolutions.code_stub = {"python": 'raise NotImplementedError("replace this line with your solution")'}

# Seconds per cell when autograding (nbgrader's default, 30, is short for a loaded machine).
c.Execute.timeout = 300

# The recall questions' collapsed answers (<details><summary>Answer</summary> ... </details>
# in markdown cells) are left out of every release, as in the student edition, by every
# `nbgrader generate_assignment`, the one `make nbgrader` runs and the ones you run after
# editing nbgrader/source/. The pattern is tools/make_student.py's ANSWER_BLOCK
# (tests/test_grading.py keeps the two equal).
import re  # noqa: E402

from nbgrader.converters import GenerateAssignment  # noqa: E402
from nbgrader.preprocessors import NbGraderPreprocessor  # noqa: E402

ANSWER_BLOCK = re.compile(r"\n?<details>\s*<summary>\s*(?:<b>)?\s*Answer\b.*?</details>[ \t]*\n?",
                          re.S | re.I)


class StripRecallAnswers(NbGraderPreprocessor):
    """Leave the recall questions' answers out of a released notebook's markdown cells."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown":
            stripped = ANSWER_BLOCK.sub("\n", cell.source).rstrip()
            cell.source = stripped + ("\n" if cell.source.endswith("\n") else "")
        return cell, resources


c.GenerateAssignment.preprocessors = [
    StripRecallAnswers, *GenerateAssignment.class_traits()["preprocessors"].default()]
