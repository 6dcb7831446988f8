"""KerasTuner HyperModels of MRACNN and CFAN (`python -m tfaesthetic.tune`).

A HyperModel turns the values of one trial into overrides of an `ExperimentConfig`
and then builds, compiles and fits exactly as `python -m tfaesthetic.train` does:
the model comes from `trainer.make_task(config, manifest).build_model()`, the
optimizer and losses from `trainer.compile_model`, the datasets from
`trainer.build_datasets`. There is no second copy of the training logic here.

Every hyperparameter comes from a search-space file (`tfaesthetic.tuning.search_space`)
and has its default there. Where a value goes is given by the space
(`SearchSpace.target`):

- "model": a constructor argument of the model (`model.params.<name>`);
- "trainer": the base learning rate (`trainer.learning_rate`);
- "fit": a fit-time choice, the global batch size (`data.global_batch_size`),
  used in `HyperModel.fit` only.

A HyperModel never opens a distribution-strategy scope: the tuner builds the model
inside its `distribution_strategy` and calls `fit` outside it.
"""

from __future__ import annotations

from typing import Optional

import keras
import keras_tuner

from tfaesthetic import config as config_lib
from tfaesthetic.tuning import search_space as search_space_lib
from tfaesthetic import trainer
from tfaesthetic.training.optimization import EpochLearningRate

#: Config path of each "trainer" / "fit" hyperparameter.
_CONFIG_PATHS = {"learning_rate": "trainer.learning_rate", "batch_size": "data.global_batch_size"}


class AestheticHyperModel(keras_tuner.HyperModel):
    """Base HyperModel: search-space values -> config overrides -> trainer.

    Args:
        config: the base experiment, resolved and validated
            (`trainer.prepare_config`); its model must be `model_name`.
        manifest: the records' manifest.
        space: the `SearchSpace` of this model (`search_space.load_search_space`).
        name: optional HyperModel name.
        tunable: see `keras_tuner.HyperModel`.
    """

    #: The config model name this HyperModel tunes ("mracnn" or "cfan").
    model_name = ""

    def __init__(
        self,
        config: config_lib.ExperimentConfig,
        manifest: dict,
        space: search_space_lib.SearchSpace,
        name: Optional[str] = None,
        tunable: bool = True,
    ):
        super().__init__(name=name, tunable=tunable)
        if config.model.name != self.model_name:
            raise ValueError(
                f"{type(self).__name__} tunes --model={self.model_name}. Received: config.model.name={config.model.name!r}"
            )
        if space.model != self.model_name:
            raise ValueError(
                f"{type(self).__name__} needs a {self.model_name} search space. "
                f"Received: {space.path or 'a search space'} for model {space.model!r}"
            )
        self.config = config
        self.manifest = manifest
        self.space = space

    def values(self, hp: keras_tuner.HyperParameters) -> dict:
        """Declares every entry of the space on `hp` and returns the trial's values."""
        return {name: self.space.register(hp, name) for name in self.space.entries}

    def declare_hyperparameters(self, hp):
        """Declares the space on `hp` without building a model (the tuner's set-up)."""
        self.values(hp)

    def model_param(self, name: str, value):
        """The model constructor value of a "model" hyperparameter (override to adapt)."""
        return value

    def overrides(self, values: dict) -> dict:
        """Dotted-path config overrides (`config.with_overrides`) of a trial's values."""
        overrides = {}
        for name, value in values.items():
            target = self.space.target(name)
            if target == "model":
                overrides[f"model.params.{name}"] = self.model_param(name, value)
            else:
                overrides[_CONFIG_PATHS[name]] = value
        return overrides

    def trial_config(self, hp: keras_tuner.HyperParameters) -> config_lib.ExperimentConfig:
        """The experiment config of the trial described by `hp`."""
        return config_lib.with_overrides(self.config, self.overrides(self.values(hp)))

    def build(self, hp):
        """Builds and compiles the trial's model through the trainer's `Task`."""
        config = self.trial_config(hp)
        task = trainer.make_task(config, self.manifest)
        model = task.build_model()
        trainer.compile_model(model, task, config)
        return model

    def fit(self, hp, model, *args, callbacks=None, epochs=None, **kwargs):
        """Fits the trial's model on the trainer's datasets (batch size from `hp`).

        Args:
            hp: the trial's hyperparameters.
            model: the model `build(hp)` returned (built under the tuner's strategy).
            *args: ignored (the data come from the config's records).
            callbacks: the tuner's callbacks (checkpoint, objective reporting).
            epochs: epochs to run (Hyperband sets it per round); default
                `trainer.epochs` of the config.
            **kwargs: passed to `Model.fit` (e.g. Hyperband's `initial_epoch`).

        Returns:
            The `History`.
        """
        del args
        config = self.trial_config(hp)
        task = trainer.make_task(config, self.manifest)
        train_ds, val_ds = trainer.build_datasets(config, task, model)
        callbacks = list(callbacks or []) + [EpochLearningRate(config.trainer)]
        if config.trainer.early_stopping_patience and val_ds is not None:
            callbacks.append(
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.trainer.early_stopping_patience)
            )
        kwargs.setdefault("verbose", config.trainer.verbose)
        kwargs.setdefault("shuffle", False)  # the input pipeline shuffles (fit cannot shuffle a Dataset)
        kwargs.pop("validation_data", None)
        return model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.trainer.epochs if epochs is None else epochs,
            steps_per_epoch=config.trainer.steps_per_epoch,
            validation_steps=config.trainer.validation_steps if val_ds is not None else None,
            callbacks=callbacks,
            **kwargs,
        )


class MRACNNHyperModel(AestheticHyperModel):
    """MRACNN (seed 003): recurrences T, LSTM layers, fusion, MFB k/o, dropouts, lr.

    Args:
        config: the base experiment (`model.name == "mracnn"`), resolved.
        manifest: the records' manifest.
        space: an MRACNN `SearchSpace` (default file: `tuning/mracnn.json`).
        name: optional HyperModel name.
        tunable: see `keras_tuner.HyperModel`.

    Reference:
        Zhang et al., IEEE TMM 2020 (seed 003), Table I (T and LSTM layers),
        §III-C Eq. 12-14 (MFB k, o), §IV-B (dropout 0.3, Adam lr 1e-3).
    """

    model_name = "mracnn"


class CFANHyperModel(AestheticHyperModel):
    """CFAN (seed 000): Eq. 6 weights λz, λβ, factor size k, GRU, kernel size, lr.

    `hidden_units` in a search space is the width of the interaction's one hidden
    layer (CFAN takes a tuple of widths).

    Args:
        config: the base experiment (`model.name == "cfan"`), resolved.
        manifest: the records' manifest.
        space: a CFAN `SearchSpace` (default file: `tuning/cfan.json`).
        name: optional HyperModel name.
        tunable: see `keras_tuner.HyperModel`.

    Reference:
        Wang et al., IJCAI 2018 (seed 000), Eq. 6 (λz, λβ), §4.1 (k = 50, λz = 0.015,
        λβ = 1, SGD lr 0.005).
    """

    model_name = "cfan"

    def model_param(self, name, value):
        if name == "hidden_units":
            return [int(value)]
        return value


#: Families with a search (from the `tfaesthetic.config` registry).
HYPERMODELS = {
    name: config_lib.get_family(name).load_hypermodel()
    for name in config_lib.families()
    if config_lib.get_family(name).hypermodel
}


def get_hypermodel(config, manifest, space) -> AestheticHyperModel:
    """The HyperModel of `config.model.name`'s family (`ModelFamily.hypermodel`)."""
    name = config.model.name
    family = config_lib.get_family(name)
    if not family.hypermodel:
        raise config_lib.ConfigError(f"No search for this model. Expected one of {sorted(HYPERMODELS)}. Received: --model={name}")
    return family.load_hypermodel()(config, manifest, space)
