"""Pictures of predictions: attention overlays and score-distribution bar plots.

Both functions write PNG files of a size fixed by their arguments (so callers and
tests know it in advance) and use matplotlib's non-interactive Agg backend only.

- `save_attention_overlay`: the image, then each attention map (MRACNN's T glimpse
  maps, seed 003 Eq. 9; CFAN's user-specific map, seed 000 Eq. 5) upsampled to the
  image and blended over it with a colour map, side by side. Size:
  `(num_maps + 1) * panel_size` wide, `panel_size` high.
- `save_distribution_plot`: a bar chart of the predicted distribution over the
  score bins (and, given, the true one as an outline), with the mean score and the
  good/bad threshold marked. Size: `width` x `height` pixels (default 480 x 320).
- `save_training_curves`: loss and a metric per epoch (train vs validation, best
  epoch marked) and the learning rate, side by side. Size: `width` x `height`.

Overlay panels can carry captions (`labels=attention_labels(T)`: "image",
"T = 1", ..., or the user's map for CFAN).
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def _to_uint8_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"Expected an image [H, W, 3]. Received: image.shape={image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image, np.float64), 0, 255).round().astype(np.uint8)
    return image


def attention_overlay(
    image, maps, *, panel_size: int = 224, alpha: float = 0.5, cmap: str = "jet", labels: Optional[Sequence[str]] = None
) -> np.ndarray:
    """Blends attention maps over an image, side by side.

    Args:
        image: uint8 or float `[H, W, 3]` pixels in [0, 255].
        maps: `[h, w]` (one map) or `[T, h, w]` attention weights (any
            non-negative values). Each map is min-max scaled to [0, 1], so the
            colours show where the map is relatively high; a uniform map is
            drawn as all low.
        panel_size: side of each square panel in pixels.
        alpha: opacity of the colour-mapped attention.
        cmap: a matplotlib colour map name.
        labels: a caption per panel (`T + 1`: the image's, then each map's, e.g.
            `attention_labels(T)`), drawn in the panel's top-left corner; the
            image size does not change.

    Returns:
        uint8 `[panel_size, (T + 1) * panel_size, 3]`: the image, then one panel per map.
    """
    maps = np.asarray(maps, np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] < 1:
        raise ValueError(f"Expected attention maps [h, w] or [T, h, w]. Received: maps.shape={maps.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"Expected 0 <= alpha <= 1. Received: alpha={alpha}")
    if panel_size < 8:
        raise ValueError(f"Expected panel_size >= 8. Received: panel_size={panel_size}")
    base = Image.fromarray(_to_uint8_image(image)).resize((panel_size, panel_size), Image.BILINEAR)
    base = np.asarray(base, np.float64)
    colormap = matplotlib.colormaps[cmap]
    panels = [base]
    for m in maps:
        m = np.nan_to_num(np.clip(m, 0, None))
        spread = m.max() - m.min()
        m = (m - m.min()) / spread if spread > 0 else np.zeros_like(m)
        up = Image.fromarray((m * 255).astype(np.uint8)).resize((panel_size, panel_size), Image.BILINEAR)
        heat = colormap(np.asarray(up, np.float64) / 255.0)[..., :3] * 255.0
        panels.append((1.0 - alpha) * base + alpha * heat)
    out = np.clip(np.concatenate(panels, axis=1), 0, 255).round().astype(np.uint8)
    if labels is not None:
        if len(labels) != len(panels):
            raise ValueError(
                f"Expected one label per panel ({len(panels)}: the image and {len(maps)} maps). "
                f"Received: {len(labels)} labels"
            )
        out = _caption_panels(out, labels, panel_size)
    return out


def attention_labels(num_maps: int, kind: str = "mracnn", user: str = "") -> list:
    """Panel captions: "image", then "T = 1".."T = T" (MRACNN glimpses) or the user's map (CFAN)."""
    if kind == "cfan":
        return ["image"] + [f"user {user}'s map" if user else "user map"] * num_maps
    return ["image"] + [f"T = {t}" for t in range(1, num_maps + 1)]


def _caption_panels(array: np.ndarray, labels: Sequence[str], panel_size: int) -> np.ndarray:
    from PIL import ImageDraw, ImageFont

    image = Image.fromarray(array)
    draw = ImageDraw.Draw(image)
    size = max(8, min(16, panel_size // 8))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    for i, label in enumerate(labels):
        x = i * panel_size + 2
        box = draw.textbbox((x, 1), str(label), font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, min(box[2] + 2, (i + 1) * panel_size - 1), box[3] + 1), fill=(0, 0, 0))
        draw.text((x, 1), str(label), fill=(255, 255, 255), font=font)
    return np.asarray(image)


def save_attention_overlay(path: str, image, maps, **kwargs) -> tuple:
    """Writes `attention_overlay(image, maps, **kwargs)` as a PNG; returns its (width, height)."""
    overlay = attention_overlay(image, maps, **kwargs)
    Image.fromarray(overlay).save(path, format="PNG")
    return overlay.shape[1], overlay.shape[0]


def save_distribution_plot(
    path: str,
    distribution: Sequence[float],
    values: Sequence[float],
    *,
    mean_score: Optional[float] = None,
    threshold: Optional[float] = None,
    title: str = "",
    width: int = 480,
    height: int = 320,
    dpi: int = 100,
    true_distribution: Optional[Sequence[float]] = None,
) -> tuple:
    """Writes a bar plot of a predicted score distribution as a PNG.

    Args:
        path: output PNG path.
        distribution: probabilities per score bin.
        values: the score value of each bin (the manifest's `score_scale.values`).
        mean_score: drawn as a vertical line when given.
        threshold: the good/bad threshold, drawn dashed when given.
        title: the plot title.
        width: image width in pixels.
        height: image height in pixels.
        dpi: dots per inch used to size the figure.
        true_distribution: the ground-truth vote distribution, drawn as a black
            outline over the predicted bars when given.

    Returns:
        `(width, height)` of the written image.
    """
    distribution = np.asarray(distribution, np.float64).reshape(-1)
    values = np.asarray(values, np.float64).reshape(-1)
    if distribution.shape != values.shape:
        raise ValueError(
            "Expected one probability per score bin. "
            f"Received: distribution.shape={distribution.shape}, values.shape={values.shape}"
        )
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    try:
        ax = fig.add_subplot(1, 1, 1)
        bar_width = 0.8 * (np.min(np.diff(values)) if len(values) > 1 else 1.0)
        ax.bar(values, distribution, width=bar_width, color="#4c72b0",
               label="predicted" if true_distribution is not None else None)
        top = float(distribution.max())
        if true_distribution is not None:
            truth = np.asarray(true_distribution, np.float64).reshape(-1)
            if truth.shape != values.shape:
                raise ValueError(
                    f"Expected one true probability per score bin. Received: true_distribution.shape={truth.shape}"
                )
            ax.bar(values, truth, width=bar_width, fill=False, edgecolor="black", linewidth=1.2, label="true")
            top = max(top, float(truth.max()))
        ax.set_xticks(values)
        ax.set_xticklabels([f"{v:g}" for v in values])
        ax.set_xlabel("score")
        ax.set_ylabel("probability")
        ax.set_ylim(0, max(1e-6, top) * 1.15)
        if mean_score is not None:
            ax.axvline(mean_score, color="#c44e52", linewidth=2, label=f"mean {mean_score:.2f}")
        if threshold is not None:
            ax.axvline(threshold, color="0.3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        if mean_score is not None or threshold is not None or true_distribution is not None:
            ax.legend(loc="upper left", fontsize="small")
        if title:
            ax.set_title(title, fontsize="medium")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return width, height


def png_to_array(path_or_file) -> np.ndarray:
    """uint8 RGB `[H, W, 3]` of a PNG (a path or a file object)."""
    with Image.open(path_or_file) as im:
        return np.asarray(im.convert("RGB"))


def distribution_plot_array(distribution, values, **kwargs) -> np.ndarray:
    """`save_distribution_plot` rendered to a uint8 `[height, width, 3]` array (for TensorBoard)."""
    import io

    buffer = io.BytesIO()
    save_distribution_plot(buffer, distribution, values, **kwargs)
    buffer.seek(0)
    return png_to_array(buffer)


def save_training_curves(
    path,
    history: dict,
    *,
    metric: Optional[str] = None,
    best_epoch: Optional[int] = None,
    width: int = 1200,
    height: int = 360,
    dpi: int = 100,
) -> tuple:
    """Writes the training curves of a run as a PNG: loss, `metric`, learning rate.

    Args:
        path: output PNG path (or a file object).
        history: per-epoch logs as in `state.json` (`{"loss": [...], "val_loss": [...],
            "learning_rate": [...], ...}`).
        metric: the metric of the middle panel (train `metric` vs `val_<metric>`);
            None leaves the panel out.
        best_epoch: the 0-based best epoch, marked in every panel.
        width: image width in pixels.
        height: image height in pixels.
        dpi: dots per inch used to size the figure.

    Returns:
        `(width, height)` of the written image.
    """
    panels = [("loss", "loss")]
    if metric:
        panels.append((metric, metric))
    if history.get("learning_rate"):
        panels.append(("learning_rate", "learning rate"))
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    try:
        for i, (key, name) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            series = [(key, "train")] if key != "learning_rate" else [(key, None)]
            if key != "learning_rate":
                series.append((f"val_{key}", "validation"))
            for k, label in series:
                values = history.get(k) or []
                if values:
                    epochs = np.arange(1, len(values) + 1)
                    ax.plot(epochs, np.asarray(values, np.float64), marker="o", markersize=3, label=label)
            if best_epoch is not None and best_epoch >= 0:
                ax.axvline(best_epoch + 1, color="0.4", linestyle=":", linewidth=1.2, label=f"best epoch {best_epoch + 1}")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_title(name, fontsize="medium")
            if key == "learning_rate":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return width, height
