"""Serving from Python: a `Predictor` (raw inputs -> named outputs) and `predict` (files -> JSON + PNGs).

`load_predictor` builds a `Predictor` from an export (`export_dir`: a version
directory or a model directory, the highest version is used; only TensorFlow is
needed to run it), a `.keras` file (`model`, with `records_dir` for the vocabulary,
id maps and score scale) or a training run directory (`run_dir`: its `.keras` model
and the records named in its `config.json`). Both kinds answer through the same
serving code (`tfaesthetic.serving.export.ServingFunctions`), so they agree.

`predict` writes into `out_dir`:

- `predictions.json`: per image the mean score, distribution and good/bad label
  (MRACNN), or the personalised `user_rating`, `agnostic_rating` and good/bad label
  (CFAN), plus the paths of its pictures; an image that cannot be read or decoded
  gets an `error` entry instead (the run goes on);
- `<i>_<name>_attention.png`: the image and each attention map over it, side by side
  (`panel_size` px squares; MRACNN's T glimpse maps, CFAN's user map);
- `<i>_<name>_distribution.png`: a bar plot of the predicted score distribution
  (480 x 320 px; models that predict a distribution).

The CLI is `python -m tfaesthetic.predict`.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np
from absl import logging

# TensorFlow-free; the modules that import TensorFlow are imported in the functions
# that need them, after `console.quiet_startup()`.
from tfaesthetic import console

#: Accepted `--panel_size` values, in pixels: an overlay holds T + 1 panels of this side,
#: so an unbounded value exhausts memory (100000 px panels need tens of GB).
PANEL_SIZE_RANGE = (16, 2048)


class Predictor:
    """Raw inputs -> named outputs, from an export or from a Keras model.

    Args:
        fn: a callable taking the raw inputs by name (string tensors `[B]`).
        input_names: the raw input names (`image_bytes`, `comments`, `user_id`, `image_id`).
        score_scale: `{"values": [...], "threshold": t}` of the records.
        source: a description of where the model came from.
    """

    def __init__(self, fn, input_names: Sequence[str], score_scale: dict, source: str):
        self.fn = fn
        self.input_names = tuple(input_names)
        self.score_scale = score_scale
        self.source = source

    def __call__(self, **raw) -> dict:
        import tensorflow as tf

        tensors = {k: tf.constant(np.array(v, dtype=object), tf.string) for k, v in raw.items() if k in self.input_names}
        return {k: np.asarray(v) for k, v in self.fn(**tensors).items()}


def _records_of_run(run_dir: str) -> Optional[str]:
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    return (config.get("data") or {}).get("records_dir") or None


def _register_custom_objects():
    """Imports the modules that register tfaesthetic's Keras classes (for `.keras` loading)."""
    import importlib

    for name in ("tfaesthetic.layers", "tfaesthetic.losses", "tfaesthetic.models", "tfaesthetic.models.mracnn",
                 "tfaesthetic.models.cfan", "tfaesthetic.models.bpr"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def load_predictor(*, export_dir=None, model=None, run_dir=None, records_dir=None) -> Predictor:
    """Builds a `Predictor` from exactly one of `export_dir`, `model` or `run_dir`.

    Args:
        export_dir: a SavedModel version directory or model directory (highest version).
        model: a `keras.Model` or the path of a `.keras` file; needs `records_dir`.
        run_dir: a training run directory; its `.keras` model and the records named in
            its `config.json` (unless `records_dir` is given).
        records_dir: the records the model was trained on.
    """
    given = [n for n, v in (("export_dir", export_dir), ("model", model), ("run_dir", run_dir)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"Expected exactly one of export_dir, model, run_dir. Received: {given or 'none'}")
    if export_dir is not None:
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (ops of the serving graph)

        from tfaesthetic.serving import export

        version_dir = export.latest_version_dir(export_dir)
        sidecar_path = os.path.join(version_dir, export.SIDECAR)
        if not os.path.exists(sidecar_path):
            raise FileNotFoundError(f"Expected a tfaesthetic export with {export.SIDECAR}. Received: {version_dir!r}")
        with open(sidecar_path, encoding="utf-8") as f:
            sidecar = json.load(f)
        loaded = tf.saved_model.load(version_dir)
        signature = loaded.signatures[export.RAW_SIGNATURE]
        names = list(signature.structured_input_signature[1])

        def fn(**tensors):
            return signature(**tensors)

        fn.loaded = loaded  # keep the SavedModel alive
        return Predictor(fn, names, sidecar["score_scale"], source=version_dir)

    import keras

    from tfaesthetic.serving import export

    if run_dir is not None:
        from tfaesthetic import trainer

        # model.keras, or for an interrupted run the config + best checkpoint.
        _register_custom_objects()
        model = trainer.load_run_model(run_dir)
        records_dir = records_dir or _records_of_run(run_dir)
        source = os.path.abspath(run_dir)
    if records_dir is None:
        raise ValueError(
            "A Keras model needs the records it was trained on (vocab.txt, users.tsv, manifest.json). "
            "Received: records_dir=None (pass --records, or a run_dir whose config.json names data.records_dir)"
        )
    if run_dir is None:
        source = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        _register_custom_objects()
        model = keras.saving.load_model(model)
    fns = export.ServingFunctions(model, records_dir)
    return Predictor(fns, [s.name for s in fns.raw_signature], fns.scale.to_json(), source=str(source))


def _per_image(values, n: int, name: str, default):
    values = list(values or [])
    if not values:
        return [default(i) for i in range(n)] if callable(default) else [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"Expected --{name} once or once per image ({n}). Received: {len(values)} values")
    return values


def predict(
    image_paths: Sequence[str],
    *,
    out_dir: str,
    comments: Optional[Sequence[str]] = None,
    user: str = "",
    image_ids: Optional[Sequence[str]] = None,
    predictor: Optional[Predictor] = None,
    export_dir=None,
    model=None,
    run_dir=None,
    records_dir=None,
    panel_size: int = 224,
    show_progress: bool = False,
) -> dict:
    """Predicts every image, writes `predictions.json` and the PNGs into `out_dir`.

    Args:
        image_paths: image files.
        out_dir: output directory (created).
        comments: comment strings, one for all images or one per image.
        user: a user id for the personalised rating (CFAN).
        image_ids: image ids (CFAN image embedding), one for all or one per image;
            default: each file's name without extension.
        predictor: a ready `Predictor`; otherwise one is loaded from `export_dir`,
            `model` or `run_dir` (+ `records_dir`).
        panel_size: side of each attention overlay panel in pixels, within
            `PANEL_SIZE_RANGE` (an overlay holds T + 1 panels of this size).
        show_progress: show count, rate and ETA over the images (`tfaesthetic.console`).

    Returns:
        The content of `predictions.json`.
    """
    from tfaesthetic.serving import visualize

    image_paths = list(image_paths)
    if not image_paths:
        raise ValueError("Expected at least one image file. Received: none")
    low, high = PANEL_SIZE_RANGE
    if isinstance(panel_size, bool) or not isinstance(panel_size, (int, np.integer)) or not low <= panel_size <= high:
        raise ValueError(f"Expected --panel_size between {low} and {high} pixels. Received: --panel_size={panel_size!r}")
    if predictor is None:
        predictor = load_predictor(export_dir=export_dir, model=model, run_dir=run_dir, records_dir=records_dir)
    n = len(image_paths)
    comments = _per_image(comments, n, "comments", "")
    image_ids = _per_image(image_ids, n, "image_id", lambda i: os.path.splitext(os.path.basename(image_paths[i]))[0])
    os.makedirs(out_dir, exist_ok=True)
    values = [float(v) for v in predictor.score_scale["values"]]
    threshold = float(predictor.score_scale["threshold"])
    results = []
    progress = console.Progress(n, "predict", unit="image") if show_progress and n > 1 else None
    for i, path in enumerate(image_paths):
        if progress is not None and i:
            progress.update(1)
        entry = {"image": path}
        if "comments" in predictor.input_names:
            entry["comments"] = comments[i]
        if "user_id" in predictor.input_names:
            entry["user"] = user
        if "image_id" in predictor.input_names:
            entry["image_id"] = image_ids[i]
        try:
            with open(path, "rb") as f:
                data = f.read()
            raw = {"image_bytes": [data], "comments": [comments[i]], "user_id": [user], "image_id": [image_ids[i]]}
            out = predictor(**raw)
        except Exception as e:  # noqa: BLE001  (reported per image, the others still run)
            import tensorflow as tf

            if not isinstance(e, (OSError, tf.errors.InvalidArgumentError)):
                raise
            lines = [line.strip() for line in str(getattr(e, "message", e)).splitlines() if line.strip()]
            named = [line[line.index("image_bytes:"):].rstrip("]'") for line in lines if "image_bytes:" in line]
            entry["error"] = f"{type(e).__name__}: {(named or lines or [''])[0][:500]}"
            logging.error("%s: %s", path, entry["error"])
            results.append(entry)
            continue
        stem = f"{i:03d}_" + "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.splitext(os.path.basename(path))[0])
        if "distribution" in out:
            dist = out["distribution"][0]
            entry["distribution"] = [round(float(p), 6) for p in dist]
            entry["mean_score"] = float(out["mean_score"][0])
        if "user_rating" in out:
            entry["user_rating"] = float(out["user_rating"][0])
            if "known_user" in out:
                entry["known_user"] = bool(out["known_user"][0])
        if "agnostic_rating" in out:
            entry["agnostic_rating"] = float(out["agnostic_rating"][0])
        if "has_comment" in out:
            entry["has_comment"] = bool(out["has_comment"][0])
        if "tag" in out:
            entry["tag_probabilities"] = [round(float(p), 6) for p in out["tag"][0]]
        if "label" in out:
            entry["label"] = "good" if int(out["label"][0]) == 1 else "bad"
        if "attention" in out:
            from PIL import Image

            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
            overlay = os.path.join(out_dir, stem + "_attention.png")
            maps = np.asarray(out["attention"][0])
            maps = maps[None] if maps.ndim == 2 else maps
            kind = "cfan" if "user_rating" in out else "mracnn"
            visualize.save_attention_overlay(
                overlay, pixels, maps, panel_size=panel_size,
                labels=visualize.attention_labels(maps.shape[0], kind, user),
            )
            entry["attention_png"] = overlay
        if "distribution" in out:
            plot = os.path.join(out_dir, stem + "_distribution.png")
            visualize.save_distribution_plot(
                plot, out["distribution"][0], values, mean_score=entry["mean_score"], threshold=threshold,
                title=os.path.basename(path),
            )
            entry["distribution_png"] = plot
        results.append(entry)
    if progress is not None:
        progress.update(1)
        progress.close()
    report = {"model": predictor.source, "score_scale": {"values": values, "threshold": threshold}, "predictions": results}
    with open(os.path.join(out_dir, "predictions.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return report
