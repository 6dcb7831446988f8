"""Pictures of predictions: attention overlays and score-distribution bar plots.

Both functions write PNG files of a size fixed by their arguments (so callers and
tests know it in advance) and use matplotlib's non-interactive Agg backend only.

- `save_attention_overlay`: the image, then each attention map (MRACNN's T glimpse
  maps, seed 003 Eq. 9; CFAN's user-specific map, seed 000 Eq. 5) upsampled to the
  image and blended over it with a colour map, side by side. Size:
  `(num_maps + 1) * panel_size` wide, `panel_size` high.
- `save_distribution_plot`: a bar chart of the predicted distribution over the
  score bins, with the mean score and the good/bad threshold marked. Size:
  `width` x `height` pixels (default 480 x 320).
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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


def attention_overlay(image, maps, *, panel_size: int = 224, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
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
    return np.clip(np.concatenate(panels, axis=1), 0, 255).round().astype(np.uint8)


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
        ax.bar(values, distribution, width=0.8 * (np.min(np.diff(values)) if len(values) > 1 else 1.0), color="#4c72b0")
        ax.set_xticks(values)
        ax.set_xticklabels([f"{v:g}" for v in values])
        ax.set_xlabel("score")
        ax.set_ylabel("probability")
        ax.set_ylim(0, max(1e-6, float(distribution.max())) * 1.15)
        if mean_score is not None:
            ax.axvline(mean_score, color="#c44e52", linewidth=2, label=f"mean {mean_score:.2f}")
        if threshold is not None:
            ax.axvline(threshold, color="0.3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        if mean_score is not None or threshold is not None:
            ax.legend(loc="upper left", fontsize="small")
        if title:
            ax.set_title(title, fontsize="medium")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return width, height
