"""cvcourse: the instructor's and student's command line for the course's nbgrader assignments.

* ``cvcourse release [ASSIGNMENT ...]`` -- regenerate ``notebooks/`` from ``solutions/``;
* ``cvcourse check NOTEBOOK`` -- a student runs their notebook and sees which visible tests pass;
* ``cvcourse grade ASSIGNMENT SUBMISSIONS_DIR`` -- grade untrusted submissions, each in a sandbox:
  :mod:`cvcourse.grade` (the batch and its stages), :mod:`cvcourse.hidden` (hidden tests in two
  halves: the kernel computes, the grader judges), :mod:`cvcourse.integrity` (finding, reading,
  rebuilding and scanning submissions), :mod:`cvcourse.sandbox` and :mod:`cvcourse.launch`
  (the kernel's bubblewrap command line and its start), :mod:`cvcourse.cgroups` (limits for the
  whole sandbox), :mod:`cvcourse.execute` (running and scoring), :mod:`cvcourse.record` (the
  per-student result), :mod:`cvcourse.results` and :mod:`cvcourse.feedback` (what is written).
"""
