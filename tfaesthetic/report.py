"""A readable report of a run or an evaluation: `report.md` + a self-contained `report.html`.

`write_report(out_dir, ...)` writes into `out_dir`:

- `report.md`: the config summary, every metrics table the metrics dict holds
  (rendered generically: a dict of numbers is a two-column table, a dict of such
  dicts - per tag, per user, with/without review - a table with one row per key),
  the training curves and a gallery, linked as relative paths;
- `report.html`: the same page with the pictures embedded (base64), to open or
  mail as one file;
- `report_files/curves.png`: loss, the main metric (train vs validation, best
  epoch marked) and the learning rate per epoch (1200 x 360 px; runs only);
- `report_files/gallery-<i>-attention.png`: the image and its attention maps
  labelled "T = 1" ... "T = T" (MRACNN) or the user's map (CFAN), `panel_size`
  px squares;
- `report_files/gallery-<i>-distribution.png`: predicted vs true score
  distribution (480 x 320 px; models that predict one).

`collect_gallery(model, config, manifest, split, n)` picks the first `n`
examples of a split (deterministic, no augmentation) and runs the model on them;
`train_and_evaluate(..., report=True)` and `python -m tfaesthetic.evaluate
--report_dir=...` call both. `GalleryImages` is the Keras callback that logs
the same pictures of a fixed handful of validation images to TensorBoard each
epoch.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from tfaesthetic import data
from tfaesthetic import io
from tfaesthetic.serving import visualize

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
FILES_DIR = "report_files"
CURVES_PNG = "curves.png"
CURVES_SIZE = (1200, 360)
DISTRIBUTION_SIZE = (480, 320)
MAX_TABLE_ROWS = 40

#: Preferred main metric of the curves, first found in the history wins.
MAIN_METRICS = (
    "distribution_srcc", "srcc", "distribution_emd", "user_rating_auc", "auc", "user_rating_accuracy",
    "agnostic_rating_accuracy", "accuracy",
)


# ---------------------------------------------------------------------------------------
# Tables.


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _cell(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if _is_number(v):
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        v = float(v)
        return "n/a" if v != v else f"{v:.4f}"
    if v is None:
        return "n/a"
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v[:12]) + (" …" if len(v) > 12 else "")
    return str(v)


def metrics_tables(metrics: dict, title: str = "metrics") -> list:
    """Every table a metrics dict holds: `[(title, header, rows, rows_left_out)]`.

    A dict's number/string entries form one `metric | value` table; an entry that is
    a dict of dicts (per tag, per user, ...) becomes a table with one row per key and
    one column per inner key; other nested dicts are walked the same way with their
    key appended to the title. At most `MAX_TABLE_ROWS` rows per table are kept.
    """
    tables = []
    flat = [(k, v) for k, v in metrics.items() if not isinstance(v, dict)]
    if flat:
        tables.append((title, ["metric", "value"], [[str(k), _cell(v)] for k, v in flat], 0))
    for key, value in metrics.items():
        if not isinstance(value, dict) or not value:
            continue
        name = f"{title} / {key}" if title else str(key)
        inner = list(value.values())
        if all(isinstance(v, dict) for v in inner) and all(
            not any(isinstance(x, dict) for x in v.values()) for v in inner
        ):
            columns = []
            for v in inner:
                for c in v:
                    if c not in columns:
                        columns.append(c)
            rows = [[str(k)] + [_cell(v.get(c)) for c in columns] for k, v in value.items()]
            left = max(0, len(rows) - MAX_TABLE_ROWS)
            tables.append((name, [str(key)] + [str(c) for c in columns], rows[:MAX_TABLE_ROWS], left))
        elif all(not isinstance(v, dict) for v in inner) and len(value) > 12 and all(_is_number(v) for v in inner):
            rows = [[str(k), _cell(v)] for k, v in value.items()]
            left = max(0, len(rows) - MAX_TABLE_ROWS)
            tables.append((name, [str(key), "value"], rows[:MAX_TABLE_ROWS], left))
        else:
            tables.extend(metrics_tables(value, name))
    return tables


def _md_table(header, rows) -> list:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def config_summary(config) -> list:
    """`[(key, value)]`: the settings a reader of a run wants first."""
    if config is None:
        return []
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    rows = [("experiment", d.get("name"))]
    for section, keys in (
        ("model", ("name", "variant", "backbone", "weights", "trainable_backbone", "embeddings", "params")),
        ("data", ("records_dir", "image_size", "max_len", "global_batch_size", "feature_cache_dir")),
        ("trainer", ("epochs", "optimizer", "learning_rate", "schedule", "steps_per_epoch", "early_stopping_patience",
                     "mixed_precision")),
        ("runtime", ("strategy", "seed")),
    ):
        for key in keys:
            value = (d.get(section) or {}).get(key)
            if value not in (None, "", {}, []):
                rows.append((f"{section}.{key}", json.dumps(value) if isinstance(value, (dict, list)) else value))
    return rows


# ---------------------------------------------------------------------------------------
# Gallery.


def _user_names(records_dir) -> dict:
    path = os.path.join(str(records_dir), "users.tsv")
    names = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2 and parts[0].isdigit():
                    names[int(parts[0])] = parts[1]
    return names


def collect_gallery(model, data_config, manifest: dict, split: str = "test", n: int = 4) -> list:
    """The first `n` examples of `split` with the model's predictions.

    Args:
        model: a Keras model or `evaluate.ExportedModel` (called on feature dicts).
        data_config: the `DataConfig` (records, sizes, mode, features).
        manifest: the records' manifest (score scale, split sizes).
        split: the records split.
        n: number of examples.

    Returns:
        A list of dicts: `image` (uint8 `[S, S, 3]`), `image_id`, `attention` (`[T, h, w]`
        or None), `kind` ("mracnn"/"cfan"), `user`, `pred_distribution`/`true_distribution`
        or `pred_rating`/`true_rating`, `pred_mean`/`true_mean`.
    """
    batch = distinct_image_batch(data_config, manifest, split, n)
    if batch is None:
        return []
    features, labels, metadata = batch
    keys = getattr(model, "input_keys", None) or (tuple(model.input.keys()) if isinstance(getattr(model, "input", None), dict) else tuple(features))
    outputs = model({k: features[k] for k in keys if k in features}, training=False)
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    values = np.asarray(manifest["score_scale"]["values"], np.float64)
    users = _user_names(data_config.records_dir) if "user_index" in features else {}
    items = []
    for i in range(int(np.asarray(features["image"]).shape[0])):
        item = {
            "image": np.asarray(features["image"][i]),
            "image_id": _text(metadata.get("image_id"), i) if isinstance(metadata, dict) else str(i),
            "attention": None,
            "kind": "cfan" if "user_index" in features else "mracnn",
            "user": "",
        }
        if "attention" in outputs:
            att = outputs["attention"][i]
            item["attention"] = att[None] if att.ndim == 2 else att
        if "user_index" in features:
            u = int(np.asarray(features["user_index"][i]))
            item["user"] = users.get(u, str(u))
        if "distribution" in outputs and "distribution" in labels:
            pred = outputs["distribution"][i].astype(np.float64)
            true = np.asarray(labels["distribution"][i], np.float64)
            true = true / true.sum() if true.sum() > 0 else true
            item.update(pred_distribution=pred, true_distribution=true,
                        pred_mean=float(pred @ values), true_mean=float(true @ values))
        if "user_rating" in outputs and "user_rating" in labels:
            item.update(pred_rating=float(np.asarray(outputs["user_rating"][i]).reshape(-1)[0]),
                        true_rating=float(np.asarray(labels["user_rating"][i]).reshape(-1)[0]))
        items.append(item)
    return items


def distinct_image_batch(data_config, manifest: dict, split: str, n: int):
    """`(features, labels, metadata)` of the first `n` examples of distinct images of `split`, as NumPy.

    One example per image (CFAN's review-mode records give several reviews of one
    image in a row: the first review of each image is taken). None when the split is
    empty or the records hold no images.
    """
    if n <= 0 or not int((manifest.get("splits") or {}).get(split, 0)) or "image" not in tuple(data_config.features):
        return None
    review = getattr(data_config, "mode", "image") == "review"
    cfg = dataclasses.replace(data_config, global_batch_size=max(1, int(n) * (16 if review else 1)), augment=False)
    batch = next(iter(data.build_dataset(cfg, False, split=split, include_metadata=True).take(1)), None)
    if batch is None:
        return None
    features, labels, metadata = (
        {k: np.asarray(v) for k, v in part.items()} if isinstance(part, dict) else part for part in batch
    )
    ids = metadata.get("image_id") if isinstance(metadata, dict) else None
    if ids is None:
        ids = features.get("image_index", np.arange(len(features["image"])))
    keep, seen = [], set()
    for i, key in enumerate(np.asarray(ids).reshape(-1).tolist()):
        if key not in seen:
            seen.add(key)
            keep.append(i)
        if len(keep) == n:
            break

    def take(part):
        return {k: v[keep] for k, v in part.items()} if isinstance(part, dict) else part

    return take(features), take(labels), take(metadata)


def _text(values, i) -> str:
    if values is None:
        return str(i)
    v = np.asarray(values)[i]
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _caption(item) -> str:
    parts = [f"`{item['image_id']}`"]
    if "pred_mean" in item:
        parts.append(f"predicted mean {item['pred_mean']:.2f}, true mean {item['true_mean']:.2f}")
    if "pred_rating" in item:
        parts.append(f"user {item['user']}: predicted rating {item['pred_rating']:.2f}, true {item['true_rating']:.0f}")
    return " — ".join(parts)


def write_gallery_pictures(items: Sequence[dict], files_dir: str, manifest: dict, *, panel_size: int = 160) -> list:
    """Writes each item's overlay and distribution PNGs; returns `[(caption, [(path, (w, h)), ...])]`."""
    os.makedirs(files_dir, exist_ok=True)
    values = [float(v) for v in manifest["score_scale"]["values"]]
    threshold = float(manifest["score_scale"].get("threshold", 0.0))
    out = []
    for i, item in enumerate(items):
        pictures = []
        att = item.get("attention")
        if att is not None:
            path = os.path.join(files_dir, f"gallery-{i}-attention.png")
            labels = visualize.attention_labels(att.shape[0], item["kind"], item.get("user", ""))
            size = visualize.save_attention_overlay(path, item["image"], att, panel_size=panel_size, labels=labels)
            pictures.append((path, size))
        else:
            path = os.path.join(files_dir, f"gallery-{i}-image.png")
            image = visualize.attention_overlay(item["image"], np.zeros((1, 2, 2)), panel_size=panel_size)[:, :panel_size]
            Image.fromarray(image).save(path, format="PNG")
            pictures.append((path, (panel_size, panel_size)))
        if "pred_distribution" in item:
            path = os.path.join(files_dir, f"gallery-{i}-distribution.png")
            size = visualize.save_distribution_plot(
                path, item["pred_distribution"], values, true_distribution=item["true_distribution"],
                mean_score=item["pred_mean"], threshold=threshold, title=f"{item['image_id']}: predicted vs true",
                width=DISTRIBUTION_SIZE[0], height=DISTRIBUTION_SIZE[1],
            )
            pictures.append((path, size))
        out.append((_caption(item), pictures))
    return out


def main_metric(history: dict) -> Optional[str]:
    """The metric of the curves' middle panel: the first of `MAIN_METRICS` the history holds."""
    for name in MAIN_METRICS:
        if history.get(name):
            return name
    for name in history:
        if name not in ("loss", "learning_rate") and not name.startswith("val_") and not name.endswith("_loss"):
            return name
    return None


# ---------------------------------------------------------------------------------------
# The report.


def write_report(
    out_dir: str,
    *,
    title: str,
    metrics: dict,
    config=None,
    history: Optional[dict] = None,
    best_epoch: Optional[int] = None,
    gallery: Sequence[dict] = (),
    manifest: Optional[dict] = None,
    facts: Sequence[tuple] = (),
    panel_size: int = 160,
) -> dict:
    """Writes `report.md`, `report.html` and their pictures into `out_dir`.

    Args:
        out_dir: where the report goes (a run directory, or any directory).
        title: the page title.
        metrics: the metrics dict (`metrics.json["test"]` or an evaluation's).
        config: the resolved `ExperimentConfig` (or its dict), summarised.
        history: per-epoch logs (curves drawn when it holds at least one epoch).
        best_epoch: the 0-based best epoch (marked on the curves).
        gallery: items from `collect_gallery`.
        manifest: the records' manifest (score scale of the distribution plots).
        facts: extra `(name, value)` rows shown first (epochs, wall time, export, ...).
        panel_size: side in pixels of each overlay panel.

    Returns:
        `{"markdown": path, "html": path, "pictures": {path: (width, height)}}`.
    """
    os.makedirs(out_dir, exist_ok=True)
    files_dir = os.path.join(out_dir, FILES_DIR)
    os.makedirs(files_dir, exist_ok=True)
    pictures = {}
    blocks = [("h1", title)]
    rows = [(str(k), _cell(v)) for k, v in facts] + [(str(k), _cell(v)) for k, v in config_summary(config)]
    if rows:
        blocks += [("h2", "Configuration"), ("table", ["setting", "value"], [list(r) for r in rows], 0)]
    blocks.append(("h2", "Metrics"))
    tables = metrics_tables(metrics or {}, "")
    if not tables:
        blocks.append(("p", "(no metrics)"))
    for name, header, table_rows, left in tables:
        if name:
            blocks.append(("h3", name))
        blocks.append(("table", header, table_rows, left))
    if history and any(history.get(k) for k in ("loss", "val_loss")):
        path = os.path.join(files_dir, CURVES_PNG)
        metric = main_metric(history)
        size = visualize.save_training_curves(
            path, history, metric=metric, best_epoch=best_epoch, width=CURVES_SIZE[0], height=CURVES_SIZE[1]
        )
        pictures[path] = size
        note = f"Loss{', ' + metric if metric else ''} and learning rate per epoch; train vs validation"
        if best_epoch is not None and best_epoch >= 0:
            note += f"; best epoch {best_epoch + 1} (lowest monitored loss) dotted"
        blocks += [("h2", "Training curves"), ("p", note + "."), ("img", path, "training curves")]
    if manifest is not None and gallery:
        blocks.append(("h2", "Gallery"))
        blocks.append(("p", "Each image with its attention maps (MRACNN: glimpses T = 1…T; CFAN: the user's map) "
                            "and, where the model predicts one, its score distribution against the true votes."))
        for caption, pics in write_gallery_pictures(gallery, files_dir, manifest, panel_size=panel_size):
            blocks.append(("p", caption))
            for path, size in pics:
                pictures[path] = size
                blocks.append(("img", path, os.path.basename(path)))
    md_path = os.path.join(out_dir, REPORT_MD)
    html_path = os.path.join(out_dir, REPORT_HTML)
    io.atomic_write_text(md_path, _render_markdown(blocks, out_dir))
    io.atomic_write_text(html_path, _render_html(blocks, title))
    return {"markdown": md_path, "html": html_path, "pictures": pictures}


def _render_markdown(blocks, out_dir) -> str:
    lines = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + block[1], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            _, header, rows, left = block
            lines += _md_table(header, rows)
            if left:
                lines.append(f"\n({left} more rows in the metrics JSON)")
            lines.append("")
        elif kind == "img":
            rel = os.path.relpath(block[1], out_dir).replace(os.sep, "/")
            lines += [f"![{block[2]}]({rel})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _inline_code(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _render_html(blocks, title) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline_code(block[1])}</p>")
        elif kind == "table":
            _, header, rows, left = block
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            cells = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            if left:
                body.append(f"<p>({left} more rows in the metrics JSON)</p>")
        elif kind == "img":
            with open(block[1], "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
            body.append(f'<p><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}"></p>')
    style = ("body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px}"
             "td:not(:first-child){text-align:right}img{max-width:100%}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------------------
# TensorBoard pictures.


def tensorboard_callback(model, data_config, manifest: dict, log_dir: str, *, n: int = 3, panel_size: int = 96,
                         split: str = "val"):
    """A `GalleryImages` callback on the first `n` examples of `split`, or None when there are none."""
    batch = distinct_image_batch(data_config, manifest, split, n)
    if batch is None:
        return None
    return GalleryImages(batch, manifest, log_dir, panel_size=panel_size)


class GalleryImages(keras.callbacks.Callback):
    """Logs overlays and predicted-vs-true distributions of fixed examples to TensorBoard per epoch.

    Args:
        batch: `(features, labels, metadata)` of the examples (one batch, fixed).
        manifest: the records' manifest (score scale).
        log_dir: the TensorBoard directory of the images (e.g. `run_dir/logs/images`).
        panel_size: side in pixels of each overlay panel.
    """

    def __init__(self, batch, manifest: dict, log_dir: str, *, panel_size: int = 96):
        super().__init__()
        self.features, self.labels, self.metadata = batch
        self.manifest = manifest
        self.log_dir = log_dir
        self.panel_size = panel_size
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        keys = getattr(model, "input_keys", None) or (tuple(model.input.keys()) if isinstance(model.input, dict) else None)
        if keys is None or "image" not in keys:
            return
        outputs = {k: np.asarray(v) for k, v in model({k: self.features[k] for k in keys}, training=False).items()}
        values = [float(v) for v in self.manifest["score_scale"]["values"]]
        overlays, plots = [], []
        for i in range(int(self.features["image"].shape[0])):
            image = np.asarray(self.features["image"][i])
            if "attention" in outputs:
                att = outputs["attention"][i]
                att = att[None] if att.ndim == 2 else att
                kind = "cfan" if "user_index" in self.features else "mracnn"
                overlays.append(visualize.attention_overlay(
                    image, att, panel_size=self.panel_size, labels=visualize.attention_labels(att.shape[0], kind)
                ))
            if "distribution" in outputs and "distribution" in self.labels:
                true = np.asarray(self.labels["distribution"][i], np.float64)
                true = true / true.sum() if true.sum() > 0 else true
                plots.append(visualize.distribution_plot_array(
                    outputs["distribution"][i], values, true_distribution=true, width=320, height=200,
                    title=f"epoch {epoch + 1}",
                ))
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch + 1):
            if overlays:
                tf.summary.image("attention", np.stack(overlays), max_outputs=len(overlays),
                                 description="Validation images and their attention maps (T = 1..T / user map)")
            if plots:
                tf.summary.image("distribution", np.stack(plots), max_outputs=len(plots),
                                 description="Predicted (bars) vs true (outline) score distribution")
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
