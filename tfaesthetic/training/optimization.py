"""The optimizer and the papers' learning-rate schedules (one definition of each).

"exponential_steps" is a staircase `ExponentialDecay` on the optimizer's step
counter, so it resumes with the restored `optimizer.iterations`; "step_epochs" is
set per epoch by the training loops from `learning_rate_at_epoch`.
"""

from __future__ import annotations

import keras

from tfaesthetic import config as config_lib


def learning_rate_at_epoch(trainer: config_lib.TrainerConfig, epoch: int) -> float:
    """Learning rate of an epoch under the "step_epochs" schedule (else the base rate).

    Seed 003 §IV-B: 1e-3 divided by 10 every 10 epochs, i.e.
    `lr * decay_rate ** (epoch // decay_every)` with 0-based epochs.
    """
    if trainer.schedule != "step_epochs":
        return float(trainer.learning_rate)
    return float(trainer.learning_rate * trainer.decay_rate ** (epoch // trainer.decay_every))


class EpochLearningRate(keras.callbacks.Callback):
    """Sets the learning rate of the "step_epochs" schedule at each epoch begin.

    `learning_rate_at_epoch` (seed 003 §IV-B: ÷10 every 10 epochs); the other
    schedules live in the optimizer and need nothing. Used by `fit` in training
    (through `RunStateCallback`) and in every tuning trial.

    Args:
        trainer_config: the `TrainerConfig`.
    """

    def __init__(self, trainer_config: config_lib.TrainerConfig):
        super().__init__()
        self.trainer_config = trainer_config

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainer_config.schedule == "step_epochs":
            self.model.optimizer.learning_rate = learning_rate_at_epoch(self.trainer_config, epoch)


def make_optimizer(trainer: config_lib.TrainerConfig) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule of `trainer`.

    "exponential_steps" is a staircase `ExponentialDecay` on the optimizer's step
    counter (seed 000: 0.005 × 0.99 every 1000 steps), so it resumes with the
    restored `optimizer.iterations`; "step_epochs" starts at the base rate and is set
    per epoch by the training loop (`learning_rate_at_epoch`).
    """
    if trainer.schedule == "exponential_steps":
        lr = keras.optimizers.schedules.ExponentialDecay(
            trainer.learning_rate, decay_steps=trainer.decay_every, decay_rate=trainer.decay_rate, staircase=True
        )
    else:
        lr = float(trainer.learning_rate)
    if trainer.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=trainer.beta_1, beta_2=trainer.beta_2)
    if trainer.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=trainer.momentum)
    raise config_lib.ConfigError(
        f"Unknown optimizer. Expected one of {config_lib.OPTIMIZERS}. Received: --optimizer={trainer.optimizer}"
    )
