"""nbval runs these notebooks in kernels that inherit this environment: pin the CPU numerics the
stored outputs were made with (scripts/reference_numerics.py), also when pytest is given only
this folder or one notebook of it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import reference_numerics  # noqa: E402

reference_numerics.apply()
