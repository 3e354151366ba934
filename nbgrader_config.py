"""nbgrader configuration: `solutions/` is the instructor source, `notebooks/` the student release.

Regenerate the release after editing a solution notebook:
    nbgrader generate_assignment 01_topk --force
"""

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "cv-fundamentals"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# The release is committed without outputs.
c.ClearOutput.enabled = True

# Bulk downloads from an LMS into submitted/ (README, "Grades for an LMS"): put the LMS's "download
# all submissions" zip in downloaded/NN_topic/archive/, run `nbgrader zip_collect NN_topic`, then
# `python -m cvcourse grade NN_topic submitted`. nbgrader matches each extracted file's full path
# with the pattern below: its student_id becomes the student's folder in submitted/, file_id the
# notebook's name.
#   Canvas names a file SORTABLENAME[_LATE]_USERID_ATTACHMENTID_FILENAME (lib/content_zipper.rb:
#   the name lowercased without punctuation; "anon_ID" when grading anonymously): the student id
#   is Canvas's user id, the "ID" column of Canvas's gradebook export.
#   Moodle names it "FULL NAME_PARTICIPANT_assignsubmission_file_FILENAME", or puts it in a folder
#   of that name (mod/assign/locallib.php, download_submissions): the student id is
#   "Full Name_1234", 1234 being the assignment's participant number.
CANVAS_FILES = r"(?i)^.*/(?:[^/]*?_)?(?:late_)?(?P<student_id>\d+|anon_[a-z0-9]+)_\d+_(?P<file_id>[^/]+)$"
MOODLE_FILES = r"^.*/(?P<student_id>[^/_]*_\d+)_assignsubmission_file(?:_/?|/)(?:[^/]+/)*(?P<file_id>[^/]+)$"
c.FileNameCollectorPlugin.named_regexp = CANVAS_FILES  # a Moodle course: MOODLE_FILES
