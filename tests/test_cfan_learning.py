"""CFAN learns through the product's entry point: `trainer.train_and_evaluate` with the
shipped `demo_cfan` preset on the default demo records (issue 10), at the preset's own budget."""

import os

import pytest

# The shipped preset's own budget (32 px, 14 epochs; no reduction needed since issue 10's
# second round): ~2-4 min on the shared 2 cores.
SEED = 0
# Measured with the shipped preset on the default demo records (generator version 4),
# cold protocol, test split (429 reviews of 80 unseen images), through
# train_and_evaluate (seeds 0 / 1 / 2; the same seed gave the same figures twice):
#
#   seed  with-review AUC  no-review per-user AUC  agnostic per-user AUC  agnostic acc. (majority)  tag acc. (most frequent)  best epoch
#   0     0.677            0.515                   0.574                  0.658 (0.553)             0.632 (0.211)             13
#   1     0.986            0.616                   0.624                  0.605 (0.553)             0.513 (0.211)             12
#   2     0.875            0.644                   0.602                  0.566 (0.553)             0.526 (0.211)             13
#
# What this test asserts, with room under seed 0's figures (the lowest on most columns):
# - the with-review path beats chance clearly (floor 0.62; measured 0.68-0.99);
# - the tag head learns the content (>= most frequent tag + 20 points; measured +30 to +42);
# - the user-agnostic head is not below the majority class (measured +1.3 to +10.5);
# - the no-review (taste-profile) path is not below chance and within 0.10 of the
#   user-agnostic baseline (measured -0.06, -0.01, +0.04). It does NOT beat that baseline
#   on the mean of the seeds (issue 10's open target), so the test does not claim it.
WITH_REVIEW_FLOOR = 0.62
NO_REVIEW_FLOOR = 0.48
NO_REVIEW_TOLERANCE = 0.10  # no-review >= agnostic - 0.10
AGNOSTIC_MARGIN = 0.0  # agnostic accuracy >= majority
TAG_MARGIN = 0.20  # tag accuracy >= most frequent tag + 20 points


@pytest.mark.slow
def test_demo_cfan_preset_learns_with_and_without_review(tmp_path):
    """CFAN-3task, cold protocol (test images never seen in training), the shipped preset.

    Also checks the defect of issue 10 is gone: the taste-profile regulariser once
    inflated the monitored val_loss and early stopping kept epoch 1's chance-level
    weights; the best epoch must now come late.
    """
    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer
    from tfaesthetic.records import demo

    records = str(tmp_path / "demo_records")
    demo.ensure_demo_records(records)  # the default size, as the no-flag run builds it
    overrides = {"data.records_dir": records, "runtime.seed": SEED, "trainer.verbose": 0}
    config = config_lib.with_overrides(config_lib.get_experiment("demo_cfan"), overrides)
    assert config.model.params["agnostic_residual"]  # the shipped preset's setting
    summary = trainer.train_and_evaluate(config, str(tmp_path / "run"), export=False)
    test = summary["test"]
    figures = {
        "with_review_auc": test["with_review"]["auc"],
        "no_review_per_user_auc": test["no_review"]["per_user_auc"],
        "agnostic_per_user_auc": test["agnostic"]["per_user_auc"],
        "agnostic_accuracy": test["agnostic"]["accuracy"],
        "majority": test["agnostic"]["majority_accuracy"],
        "tag_accuracy": test["tag"]["accuracy"],
        "tag_majority": test["tag"]["majority_accuracy"],
        "best_epoch": summary["best_epoch"],
    }
    print("demo_cfan seed", SEED, figures)
    assert test["oov_images"] == test["num_examples"] > 300  # cold: every test image is unseen
    # The defect of issue 10 kept the first epoch (best_epoch 0): a later one must win.
    assert summary["best_epoch"] >= 1, figures
    assert figures["with_review_auc"] >= WITH_REVIEW_FLOOR, figures
    assert figures["no_review_per_user_auc"] >= NO_REVIEW_FLOOR, figures
    assert figures["no_review_per_user_auc"] >= figures["agnostic_per_user_auc"] - NO_REVIEW_TOLERANCE, figures
    assert figures["agnostic_accuracy"] >= figures["majority"] + AGNOSTIC_MARGIN, figures
    assert figures["tag_accuracy"] >= figures["tag_majority"] + TAG_MARGIN, figures
    assert os.path.exists(os.path.join(str(tmp_path / "run"), "metrics.json"))
