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
