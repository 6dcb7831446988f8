"""Devices and distribution strategies: created once per run, before any other op.

`create_strategy` gives the strategy a `RuntimeConfig` names; `is_chief` tells the
process that writes checkpoints, logs, metrics and the export (the strategy's own
`should_checkpoint`), `is_multi_worker` whether the custom multi-worker loop
(`tfaesthetic.training.multi_worker`) must train instead of `Model.fit`.
"""

from __future__ import annotations

import tensorflow as tf

from tfaesthetic import config as config_lib


def configure_logical_devices(num_cpu_devices: int) -> None:
    """Splits the host CPU into `num_cpu_devices` logical devices.

    Must run before TensorFlow initialises its devices (i.e. before the first op).

    Args:
        num_cpu_devices: number of logical CPU devices (> 1 to have any effect).

    Raises:
        RuntimeError: the devices were already initialised with another count.
    """
    if num_cpu_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_cpu_devices)]
        )
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != num_cpu_devices:
            raise RuntimeError(
                f"Cannot split the CPU into {num_cpu_devices} logical devices: TensorFlow already "
                f"initialised {have}. Configure the devices before any TensorFlow op. ({e})"
            ) from e


def create_strategy(runtime: config_lib.RuntimeConfig) -> tf.distribute.Strategy:
    """Creates the distribution strategy named by `runtime.strategy`.

    Args:
        runtime: "default" gives the default (single-device) strategy; "mirrored" a
            `MirroredStrategy` over all local GPUs, or over the logical CPU devices
            when there is no GPU and `num_logical_cpu_devices > 1`; "multi_worker" a
            `MultiWorkerMirroredStrategy` configured from `TF_CONFIG`.

    Returns:
        The strategy.
    """
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        configure_logical_devices(runtime.num_logical_cpu_devices)
        if not tf.config.list_logical_devices("GPU") and runtime.num_logical_cpu_devices > 1:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices=devices)
        return tf.distribute.MirroredStrategy()
    if runtime.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise config_lib.ConfigError(
        f"Unknown strategy. Expected one of {config_lib.STRATEGIES}. Received: --strategy={runtime.strategy}"
    )


def is_multi_worker(strategy) -> bool:
    """Whether `strategy` spans several workers (needs the custom training loop)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints, logs, metrics and the export.

    The strategy's own answer (`strategy.extended.should_checkpoint`): the `chief`
    task, or worker 0 when the cluster has no chief; every process of a
    single-worker strategy.
    """
    return bool(getattr(strategy.extended, "should_checkpoint", True))
