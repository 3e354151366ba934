"""cvcourse: the instructor's and student's command line for the course's nbgrader assignments.

* ``cvcourse release [ASSIGNMENT ...]`` -- regenerate ``notebooks/`` from ``solutions/``;
* ``cvcourse check NOTEBOOK`` -- a student runs their notebook and sees which visible tests pass;
* ``cvcourse grade ASSIGNMENT SUBMISSIONS_DIR`` -- grade untrusted submissions, each in a sandbox
  (:mod:`cvcourse.grade`, :mod:`cvcourse.sandbox`, :mod:`cvcourse.integrity`,
  :mod:`cvcourse.execute`, :mod:`cvcourse.feedback`).
"""
