"""Import TensorFlow and Keras once, quietly, with GPUs set up.

Every module that needs TensorFlow imports it from here, so its C++ log spam is
silenced before the first import and GPU memory growth is set exactly once.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide INFO/WARNING from TF's C++ side

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

logging.getLogger("tensorflow").setLevel(logging.ERROR)
keras.utils.disable_interactive_logging()  # our own progress lines replace Keras's bars


def gpus() -> list:
    """The visible GPUs, with memory growth enabled so one run does not grab them all."""
    devices = tf.config.list_physical_devices("GPU")
    for device in devices:
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:  # already initialised: growth can only be set before first use
            pass
    return devices


def use_mixed_precision_if_gpu() -> bool:
    """Mixed precision speeds up GPUs but slows CPUs, so enable it on GPU only."""
    on_gpu = bool(gpus())
    keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "float32")
    return on_gpu
