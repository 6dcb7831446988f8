"""Experiment configuration as dataclasses (data / model / trainer / runtime / experiment).

The resolved `ExperimentConfig` is written as JSON into the run directory at start.
"""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass
class DataConfig:
    """Input pipeline configuration (`tfaesthetic.data.build_dataset`).

    Attributes:
        records_dir: directory holding the shards and manifest.json.
        mode: "image" (one example per image, MRACNN) or "review" (one example per
            review, CFAN / BPR / VBPR).
        features: which model inputs to yield, e.g. ("image", "tokens") for MRACNN,
            ("tokens",) for a text-only variant, ("image", "image_index",
            "user_index", "review") for CFAN.
        image_size: side of the square image fed to the backbone.
        max_len: tokens per example after padding/truncation (seed 003 §IV-B1: 200).
        global_batch_size: batch size over all replicas and workers.
        shuffle_buffer: examples in the shuffle buffer (training only).
        augment: random augmentation on the training branch.
        cache: cache parsed examples in memory after the first epoch (small data only).
        seed: shuffle/augmentation seed; None for nondeterministic.
        feature_cache_dir: when set, read cached backbone features instead of images.
    """

    records_dir: str = ""
    mode: str = "image"
    features: tuple = ("image", "tokens")
    image_size: int = 224
    max_len: int = 200
    global_batch_size: int = 32
    shuffle_buffer: int = 2048
    augment: bool = True
    cache: bool = False
    seed: Optional[int] = None
    feature_cache_dir: str = ""
