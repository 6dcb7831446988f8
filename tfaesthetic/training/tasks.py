"""How each model family is built, compiled and evaluated (the `Task` of the registry).

`make_task(config, manifest)` returns the family's `Task` (`tfaesthetic.config`
registry: MRACNN, CFAN, BPR / VBPR); `compile_model` compiles a model with the task's
losses and the trainer's optimizer; `plain_copy` rebuilds a model trained under a
strategy under the default one (for evaluation, saving and export).
"""

from __future__ import annotations

import functools
import inspect
from typing import Optional

import keras
import numpy as np

from tfaesthetic import config as config_lib
from tfaesthetic import data
from tfaesthetic.data import records_info
from tfaesthetic.layers.vectors import load_vectors
from tfaesthetic.losses.emd import EMD
from tfaesthetic.metrics import evaluation
from tfaesthetic.metrics import ranking
from tfaesthetic.records import reviews
from tfaesthetic.training.optimization import make_optimizer


class Task:
    """How to build, train and evaluate one model family.

    Attributes:
        config: the resolved experiment config.
        manifest: the records' manifest.
    """

    def __init__(self, config: config_lib.ExperimentConfig, manifest: dict):
        self.config = config
        self.manifest = manifest

    @property
    def vocab_size(self) -> int:
        return int(self.manifest.get("vocab_size", 0))

    @property
    def num_bins(self) -> int:
        return int(self.manifest["score_scale"]["num_bins"])

    @functools.cached_property
    def vocabulary_words(self) -> list:
        """The records' vocabulary in id order (`vocab.txt`), read once."""
        return records_info.vocabulary_words(self.config.data.records_dir)

    def vectors(self) -> Optional[np.ndarray]:
        """The word-vector matrix for the vocabulary, or None without `--embeddings`."""
        path = self.config.model.embeddings
        if not path:
            return None
        matrix, report = load_vectors(path, self.vocabulary_words)
        print(f"Word vectors from {path}: {report}")
        return matrix

    def build_model(self) -> keras.Model:
        raise NotImplementedError

    def losses(self, model) -> tuple[dict, dict]:
        """(losses by output name, loss weights by output name)."""
        if hasattr(model, "default_losses"):
            losses = model.default_losses()
            weights = model.default_loss_weights() if hasattr(model, "default_loss_weights") else {}
            return losses, {k: float(weights.get(k, 1.0)) for k in losses}
        raise NotImplementedError

    def batch_fn(self, model):
        """`fn(features, labels) -> (features, labels)` for `Dataset.map`.

        Keeps the features the model reads (and, through the model's own
        `prepare_batch` where it has one, the labels its losses and metrics use).
        """
        if hasattr(model, "prepare_batch"):
            return model.prepare_batch
        keys = tuple(input_keys(model))

        def fn(features, labels):
            return {k: features[k] for k in keys}, labels

        return fn

    def evaluate(self, model, split: str) -> tuple[dict, str]:
        """Metrics dict and readable table of `model` on a records split."""
        raise NotImplementedError


def input_keys(model):
    """The input names a model reads (its `input_keys`, else its functional inputs)."""
    keys = getattr(model, "input_keys", None)
    if keys:
        return keys
    return tuple(model.input.keys()) if isinstance(model.input, dict) else tuple(model.input_names)


class MRACNNTask(Task):
    """MRACNN: score distribution, EMD loss (r = 2), seed 003 metrics."""

    def build_model(self):
        m, d = self.config.model, self.config.data
        kwargs = dict(
            vocab_size=self.vocab_size,
            num_bins=self.num_bins,
            backbone=m.backbone,
            backbone_weights=m.weights or None,
            trainable_backbone=m.trainable_backbone,
            image_size=d.image_size,
            max_len=d.max_len,
            variant=m.variant,
        )
        kwargs.update(m.params)
        vectors = self.vectors()
        if vectors is not None:
            kwargs["embedding_dim"] = int(vectors.shape[1])
        model = model_class(m.name)(**kwargs)
        if vectors is not None:
            # Seed 003 §IV-B1: GloVe-initialised, frozen word embeddings.
            model.initialize_embeddings(vectors, trainable=False)
        lexicon = getattr(model, "sentiment_lexicon_layer", None) is not None
        subwords = getattr(getattr(model, "ngram_bag", None), "subword_buckets", 0)
        if lexicon:  # the prior word polarities of the review derivation's lexicon (frozen)
            model.initialize_lexicon(reviews.lexicon_table(self.vocabulary_words))
        if subwords:  # each word's hashed character n-grams (frozen)
            model.initialize_subwords(self.vocabulary_words)
        return model

    def losses(self, model):
        if hasattr(model, "default_losses"):
            return super().losses(model)
        return {"distribution": EMD(r=2)}, {"distribution": 1.0}

    def evaluate(self, model, split):
        dataset = data.build_dataset(
            self.config.data, False, split=split, include_metadata=True, manifest=self.manifest)
        keys = tuple(input_keys(model))
        dataset = dataset.map(lambda f, y, meta: ({k: f[k] for k in keys}, y, meta))
        results = evaluation.evaluate_model(
            model,
            dataset,
            scale=self.manifest["score_scale"],
            tag_names=records_info.tag_names(self.config.data.records_dir),
        )
        table = evaluation.format_table(results, title=f"MRACNN ({self.config.model.variant}) on {split}")
        return results, table


class ReviewTask(Task):
    """CFAN / BPR / VBPR: one example per review, personalised metrics per serving path (seed 000 §4)."""

    def image_kwargs(self) -> dict:
        m, d = self.config.model, self.config.data
        return dict(
            backbone=m.backbone,
            backbone_weights=m.weights or None,
            backbone_trainable=m.trainable_backbone,
            image_size=d.image_size if config_lib.uses_images(m) else None,
        )

    def build_model(self):
        m = self.config.model
        kwargs = {} if m.name == "bpr" else self.image_kwargs()
        kwargs.update(m.params)
        return model_class(m.name).from_manifest(self.manifest, **kwargs)

    def evaluate(self, model, split):
        dataset = data.build_dataset(
            self.config.data, False, split=split, include_metadata=True, manifest=self.manifest)
        results = ranking.evaluate_personalised(
            model,
            dataset,
            num_users=int(self.manifest["num_users"]),
            num_train_images=int(self.manifest.get("num_train_images", self.manifest.get("num_images"))),
        )
        results["protocol"] = getattr(self.config.data, "protocol", "cold")
        title = (
            f"{self.config.model.name.upper()} ({self.config.model.variant}) on {split}, "
            f"{results['protocol']} protocol"
        )
        return results, format_ranking_table(results, title, records_info.tag_names(self.config.data.records_dir))


class CFANTask(ReviewTask):
    """CFAN and its CFN variants (seed 000)."""

    def build_model(self):
        m, d = self.config.model, self.config.data
        kwargs = dict(self.image_kwargs(), variant=m.variant, max_len=d.max_len)
        vectors = self.vectors()
        if vectors is not None:
            kwargs["review_vectors"] = vectors
            kwargs["embedding_dim"] = int(vectors.shape[1])
            kwargs["freeze_embeddings"] = True
        kwargs.update(m.params)
        return model_class(m.name).from_manifest(self.manifest, **kwargs)


_PATH_TITLES = {
    "with_review": "with review",
    "no_review": "without review",
    "agnostic": "user-agnostic",
    "unknown_user": "unknown user",
}


def format_ranking_table(results: dict, title: str = "", tag_names=None) -> str:
    """A readable table of `evaluate_personalised` results: one column per serving path, then per tag."""
    lines = [title, ""] if title else []
    paths = [p for p in ranking.PATHS if results.get(p)]
    lines += ["| metric | " + " | ".join(_PATH_TITLES[p] for p in paths) + " |", "|---|" + "---:|" * len(paths)]
    for key, label in (("auc", "AUC"), ("per_user_auc", "per-user AUC"), ("users_evaluated", "users evaluated"),
                       ("rating_accuracy", "rating accuracy")):
        lines.append(f"| {label} | " + " | ".join(_fmt(results[p].get(key)) for p in paths) + " |")
    agnostic = results.get("agnostic")
    lines.append("")
    if agnostic:
        lines.append(
            f"user-agnostic accuracy (per image, {agnostic['images']} images): {_fmt(agnostic['accuracy'])} "
            f"(majority class {_fmt(agnostic['majority_accuracy'])})"
        )
    if results.get("tag"):
        tag = results["tag"]
        lines.append(f"tag accuracy ({tag['images']} images): {_fmt(tag['accuracy'])} (most frequent tag {_fmt(tag['majority_accuracy'])})")
    lines.append(
        f"examples: {results.get('num_examples')} ({results.get('known_user_examples')} by known users); "
        f"OOV images: {results.get('oov_images')}, OOV users: {results.get('oov_users')}"
    )
    lines += ["", "Paths:"] + [f"- {_PATH_TITLES[p]}: {ranking.PATH_DESCRIPTIONS[p]}" for p in paths]
    per_tag = (agnostic or {}).get("accuracy_per_tag") or {}
    if per_tag:
        lines += ["", "| tag | n | user-agnostic accuracy (%) |", "|---|---:|---:|"]
        for tag, row in per_tag.items():
            name = tag
            if tag_names is not None and str(tag).lstrip("-").isdigit() and 0 <= int(tag) < len(tag_names):
                name = tag_names[int(tag)]
            lines.append(f"| {name} | {row.get('count', '')} | {100.0 * float(row['accuracy']):.2f} |")
    return "\n".join(lines)


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4f}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def make_task(config: config_lib.ExperimentConfig, manifest: dict) -> Task:
    """The `Task` of the config's model family (`tfaesthetic.config` registry)."""
    return config_lib.get_family(config.model.name).load_task()(config, manifest)


def model_class(name: str):
    """The Keras model class of a model family (`tfaesthetic.config` registry)."""
    return config_lib.get_family(name).load_model_class()


def compile_model(model, task: Task, config: config_lib.ExperimentConfig) -> None:
    """Compiles `model` with the task's losses and the trainer's optimizer (in scope)."""
    losses, weights = task.losses(model)
    kwargs = {}
    if hasattr(model, "default_metrics"):
        kwargs["metrics"] = model.default_metrics()
    if "scale" in inspect.signature(model.compile).parameters:
        kwargs["scale"] = task.manifest["score_scale"]  # MRACNN's distribution metrics
    model.compile(
        optimizer=make_optimizer(config.trainer),
        loss=losses,
        loss_weights=weights,
        jit_compile=bool(config.trainer.jit_compile),
        **kwargs,
    )


def plain_copy(model, task: Task, config) -> keras.Model:
    """A copy of a model trained under a strategy, built under the default strategy.

    Keras' `predict_on_batch` under a `MirroredStrategy` feeds the whole batch to
    every replica and concatenates their outputs; evaluation, saving and export use
    this copy instead (same weights, same optimizer state).
    """
    plain = task.build_model()
    compile_model(plain, task, config)
    plain.optimizer.build(plain.trainable_variables)
    for target, source in zip(plain.variables, model.variables):
        target.assign(keras.ops.convert_to_numpy(source))
    for target, source in zip(plain.optimizer.variables, model.optimizer.variables):
        target.assign(keras.ops.convert_to_numpy(source))
    return plain
