"""Import TensorFlow and Keras once, quietly, with GPUs set up.

Every module that needs TensorFlow imports it from here, so its start-up chatter is
silenced and GPU memory growth is set exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide INFO/WARNING from TF's C++ side


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence file descriptor 2 while TF starts: its C++ start-up lines (oneDNN, CUDA
    probing) ignore TF_CPP_MIN_LOG_LEVEL in TF 2.21 and bury our one-line errors."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with quiet_native_stderr():
    import keras
    import tensorflow as tf

    _GPUS = tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, once

# TLS_CPU_REPLICAS=N splits the CPU into N logical devices, so the multi-device training
# path (MirroredStrategy) can run, and be tested, on a machine without GPUs. It must be
# set before TensorFlow's runtime starts, hence here at import.
CPU_REPLICAS = int(os.environ.get("TLS_CPU_REPLICAS", "0") or 0)
if CPU_REPLICAS > 1:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration() for _ in range(CPU_REPLICAS)],
    )

logging.getLogger("tensorflow").setLevel(logging.ERROR)
keras.utils.disable_interactive_logging()  # our own progress lines replace Keras's bars
# Our tf.data pipeline shuffles itself; Keras warns that fit's shuffle flag is ignored.
warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")


def gpus() -> list:
    """The visible GPUs, with memory growth enabled so one run does not grab them all."""
    for device in _GPUS:
        try:
            tf.config.experimental.set_memory_growth(device, True)
        except RuntimeError:  # already initialised: growth can only be set before first use
            pass
    return _GPUS


def use_mixed_precision_if_gpu() -> bool:
    """Mixed precision speeds up GPUs but slows CPUs, so enable it on GPU only."""
    on_gpu = bool(gpus())
    keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "float32")
    return on_gpu


def distribution_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, MirroredStrategy over
    several GPUs (or TLS_CPU_REPLICAS logical CPUs), else the default single-device one."""
    if "TF_CONFIG" in os.environ:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(_GPUS) > 1:
        return tf.distribute.MirroredStrategy()
    if CPU_REPLICAS > 1:
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(CPU_REPLICAS)])
    return tf.distribute.get_strategy()
