"""The train / validation datasets of a run, with the global batch size and known lengths.

Built outside the strategy scope (the model only names the inputs and outputs). When
no step count is given, each dataset carries its length (from the manifest), so
`fit` knows the epoch's end; with `--steps_per_epoch` / `--validation_steps` they
repeat.
"""

from __future__ import annotations

import math
from typing import Optional

import tensorflow as tf

from tfaesthetic import config as config_lib
from tfaesthetic import data


def num_split_examples(manifest: dict, split: str) -> int:
    """Images in a split according to the manifest."""
    return int((manifest.get("splits") or {}).get(split, 0))


def build_datasets(config, task, model, *, input_context=None) -> tuple:
    """(train, val or None) datasets of `(features, labels)` for `model`, global batch size.

    Call outside the strategy scope (the model only names the inputs and outputs).
    """
    fn = task.batch_fn(model)

    def prepare(ds):
        return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)

    train = prepare(data.build_dataset(
        config.data, True, split="train", input_context=input_context, manifest=task.manifest))
    val = None
    if num_split_examples(task.manifest, "val"):
        val = prepare(data.build_dataset(
            config.data, False, split="val", input_context=input_context, manifest=task.manifest))
    return with_known_length(train, val, config, task.manifest, input_context)


def num_batches(config, manifest: dict, split: str, *, training: bool) -> Optional[int]:
    """Batches in one pass over `split` at the global batch size (None if the manifest cannot tell).

    Training batches drop the remainder (`build_dataset(is_training=True)`); evaluation
    batches keep it. None under the warm protocol (its parts are made in the pipeline).
    """
    mode = config_lib.MODES.get(config.model.name, getattr(config.data, "mode", "image"))
    if mode == "review" and getattr(config.data, "protocol", "cold") == "warm":
        # The warm protocol splits the training records' reviews by a hash of
        # (image, user) in the pipeline: the manifest does not count the parts.
        return None
    try:
        if mode == "review":
            reviews = manifest.get("reviews")
            if reviews is None:
                return None
            n = int(reviews.get(split, 0))
        else:
            n = num_split_examples(manifest, split)
    except (TypeError, ValueError):
        return None
    batch = int(config.data.global_batch_size)
    return n // batch if training else math.ceil(n / batch)


def with_known_length(train, val, config, manifest, input_context=None) -> tuple:
    """Gives `fit` what it expects: a repeated dataset for a fixed step count, else a known length.

    With `--steps_per_epoch` (`--validation_steps`) the dataset repeats and epochs
    continue through it; without, one epoch is one pass and the dataset carries its
    length (`assert_cardinality`, from the manifest's counts), so Keras neither runs
    into the end of the data nor warns that it did.
    """
    sharded = input_context is not None and input_context.num_input_pipelines > 1
    if config.trainer.steps_per_epoch:
        train = train.repeat()  # epochs of a fixed step count continue through the data
    elif not sharded:
        n = num_batches(config, manifest, "train", training=True)
        if n:
            train = train.apply(tf.data.experimental.assert_cardinality(n))
    if val is not None:
        if config.trainer.validation_steps:
            val = val.repeat()
        elif not sharded:
            n = num_batches(config, manifest, "val", training=False)
            if n:
                val = val.apply(tf.data.experimental.assert_cardinality(n))
    return train, val
