"""cvlib: the tested library behind the CV Fundamentals course.

A flat package, one module per topic:

* :mod:`cvlib.device`  -- ``pick_device``, ``seed_everything``, ``experiment_scale``
* :mod:`cvlib.data`    -- offline digits and CIFAR-10 as train/val/test ``Splits``
* :mod:`cvlib.metrics` -- top-k accuracy and error (chapter 01)
* :mod:`cvlib.models`  -- small models that train in seconds on a CPU
* :mod:`cvlib.train`   -- ``fit``, ``evaluate``, ``History``, ``Callback``
"""

from . import data, device, metrics, models, train

__all__ = ["data", "device", "metrics", "models", "train"]
__version__ = "0.1.0"
