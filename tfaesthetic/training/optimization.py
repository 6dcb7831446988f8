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
    # Weight averaging (`TrainerConfig.ema_momentum`): Keras' moving average of the weights.
    ema = dict(use_ema=True, ema_momentum=float(trainer.ema_momentum)) if trainer.ema_momentum else {}
    if trainer.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=trainer.beta_1, beta_2=trainer.beta_2, **ema)
    if trainer.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=trainer.momentum, **ema)
    raise config_lib.ConfigError(
        f"Unknown optimizer. Expected one of {config_lib.OPTIMIZERS}. Received: --optimizer={trainer.optimizer}"
    )


class AveragedWeightsSwap(keras.callbacks.SwapEMAWeights):
    """Weight averaging in the training loop (`TrainerConfig.ema_momentum`).

    Keras' `SwapEMAWeights(swap_on_epoch=True)`: the optimizer's moving average of
    the weights is swapped into the model for validation and at every epoch end, so
    that the callbacks after it (the checkpoint and early stopping of
    `RunStateCallback`) see the averaged weights, and swapped back at the next epoch
    begin. Unlike Keras' callback it does not fold the average into the raw weights
    after the last epoch: every checkpoint holds the same thing (the model's
    weights = the average, the optimizer's average slots = the raw weights), so a
    resumed run, also one continued to a larger `epochs`, swaps back first and goes
    on exactly.

    Args:
        resumed: the model was just restored from such a checkpoint.
    """

    def __init__(self, resumed: bool = False):
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = bool(resumed)

    def on_epoch_end(self, epoch, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True
