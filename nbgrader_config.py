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
