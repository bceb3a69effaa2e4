"""nbgrader's configuration for the frbook assignments (`make assignments` runs nbgrader here).

The source notebooks (with solutions and hidden tests) live in the repository, next to this file;
everything nbgrader writes (student versions, submissions, grades, the gradebook database) goes
to the course directory, `_build/assignments` unless FRBOOK_COURSE_DIR names another one. Keep a
course you grade for real outside `_build`: `make clean` deletes it.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

c = get_config()  # noqa: F821 (nbgrader defines it when it reads this file)

c.CourseDirectory.course_id = "frbook"
c.CourseDirectory.root = os.path.abspath(os.environ.get("FRBOOK_COURSE_DIR", os.path.join(REPO, "_build", "assignments")))
c.CourseDirectory.source_directory = os.path.join(HERE, "source")
c.CourseDirectory.release_directory = "release"
# Add an assignment to the gradebook the first time it is generated.
c.GenerateAssignment.create_assignment = True
# The project assignment trains for up to two minutes in one cell; nbgrader's default is 30 s.
c.Execute.timeout = 600
