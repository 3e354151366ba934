"""The course's benchmarks (see README.md). ``python bench/run.py`` runs the suite."""
