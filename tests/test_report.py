"""`tfaesthetic.report`: generic metrics tables, pictures of the expected sizes, links that resolve.

The report of a real run (MRACNN, the no-flag CLI) is checked in `tests/test_train_cli.py`;
here a CFAN-shaped metrics dict and gallery, without training.
"""

import os
import re

import numpy as np
from PIL import Image

from tfaesthetic import report
from tfaesthetic.serving import visualize

# A CFAN-like result: ranking metrics, a per-tag breakdown and with/without-review tables.
CFAN_METRICS = {
    "num_examples": 120,
    "auc": 0.71,
    "agnostic_accuracy": 0.64,
    "agnostic_accuracy_per_tag": {"landscape": {"accuracy": 0.5, "count": 4}, "portrait": {"accuracy": 0.75, "count": 8}},
    "with_review": {"num_examples": 80, "auc": 0.74, "rating_accuracy": 0.69},
    "without_review": {"num_examples": 40, "auc": 0.66, "rating_accuracy": 0.61},
    "per_user_auc": {f"u{i}": 0.5 + i / 100 for i in range(50)},
}
MANIFEST = {"score_scale": {"num_bins": 5, "values": [1.0, 2.0, 3.0, 4.0, 5.0], "threshold": 3.0}, "splits": {"test": 2}}


def test_every_table_of_the_metrics_dict_is_rendered():
    tables = {title: (header, rows, left) for title, header, rows, left in report.metrics_tables(CFAN_METRICS, "")}
    assert set(tables) == {"", "agnostic_accuracy_per_tag", "with_review", "without_review", "per_user_auc"}
    assert ["auc", "0.7100"] in tables[""][1]
    header, rows, _ = tables["agnostic_accuracy_per_tag"]
    assert header == ["agnostic_accuracy_per_tag", "accuracy", "count"] and rows[1] == ["portrait", "0.7500", "8"]
    assert ["rating_accuracy", "0.6100"] in tables["without_review"][1]
    _, rows, left = tables["per_user_auc"]
    assert len(rows) == report.MAX_TABLE_ROWS and left == 50 - report.MAX_TABLE_ROWS


def test_cfan_report_files_sizes_and_links(tmp_path):
    rng = np.random.default_rng(0)
    gallery = [
        dict(image=rng.integers(0, 255, (32, 32, 3)).astype(np.float32), image_id=f"img{i}",
             attention=rng.random((1, 4, 4)), kind="cfan", user="alice", pred_rating=0.8, true_rating=1.0)
        for i in range(2)
    ]
    history = {"loss": [0.9, 0.7, 0.6], "val_loss": [1.0, 0.8, 0.85], "user_rating_auc": [0.6, 0.7, 0.72],
               "val_user_rating_auc": [0.58, 0.66, 0.65], "learning_rate": [5e-3, 5e-3, 4.95e-3]}
    written = report.write_report(
        str(tmp_path), title="CFAN (cfan_3task) on test", metrics=CFAN_METRICS, history=history, best_epoch=1,
        gallery=gallery, manifest=MANIFEST, facts=[("epochs", 3)], panel_size=64,
    )
    md = open(written["markdown"], encoding="utf-8").read()
    assert "### with_review" in md and "### without_review" in md and "user alice: predicted rating 0.80" in md
    assert "best epoch 2" in md and "user_rating_auc" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(os.path.join(str(tmp_path), link) for link in links) == sorted(written["pictures"])
    sizes = {os.path.basename(p): Image.open(p).size for p in written["pictures"]}
    assert sizes == {"curves.png": (1200, 360), "gallery-0-attention.png": (128, 64), "gallery-1-attention.png": (128, 64)}
    html = open(written["html"], encoding="utf-8").read()
    assert html.count("data:image/png;base64,") == 3 and "<table>" in html


def test_overlay_labels_keep_the_size_and_mark_each_panel():
    image = np.full((40, 40, 3), 128, np.uint8)
    maps = np.random.default_rng(0).random((3, 5, 5))
    plain = visualize.attention_overlay(image, maps, panel_size=96)
    labelled = visualize.attention_overlay(image, maps, panel_size=96, labels=visualize.attention_labels(3))
    assert labelled.shape == plain.shape == (96, 4 * 96, 3)
    # Each panel's caption corner changed, the rest of the panel did not.
    for panel in range(4):
        corner = np.s_[:12, panel * 96 : panel * 96 + 30]
        assert (labelled[corner] != plain[corner]).any()
        assert (labelled[40:, panel * 96 : (panel + 1) * 96] == plain[40:, panel * 96 : (panel + 1) * 96]).all()
    assert visualize.attention_labels(3) == ["image", "T = 1", "T = 2", "T = 3"]
    assert visualize.attention_labels(1, "cfan", "bob") == ["image", "user bob's map"]
