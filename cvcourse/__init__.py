"""cvcourse: the instructor's and student's command line for the course's nbgrader assignments.

* ``cvcourse release [ASSIGNMENT ...]`` -- regenerate ``notebooks/`` from ``solutions/``;
* ``cvcourse check NOTEBOOK`` -- a student runs their notebook and sees which visible tests pass
  (the visible tests' checks, which say what was expected and what came back: :mod:`cvcourse.expect`);
* ``cvcourse grade ASSIGNMENT SUBMISSIONS_DIR`` -- grade untrusted submissions, each in a sandbox:
  :mod:`cvcourse.grade` (the batch and its stages), :mod:`cvcourse.hidden` (hidden tests in two
  halves: the kernel computes, the grader judges), :mod:`cvcourse.integrity` (finding, reading,
  rebuilding and scanning submissions), :mod:`cvcourse.sandbox` and :mod:`cvcourse.launch`
  (the kernel's bubblewrap command line and its start), :mod:`cvcourse.cgroups` (limits for the
  whole sandbox), :mod:`cvcourse.execute` (running and scoring), :mod:`cvcourse.record` (the
  per-student result), :mod:`cvcourse.results` and :mod:`cvcourse.feedback` (what is written);
* ``cvcourse review ASSIGNMENT [STUDENT]`` -- list, accept or set the grades of flagged work
  (:mod:`cvcourse.review`);
* ``cvcourse export ASSIGNMENT FORMAT`` -- grades for Canvas, Moodle or Gradescope and feedback
  zips, from the gradebook (:mod:`cvcourse.export`, also nbgrader export plugins).
"""
