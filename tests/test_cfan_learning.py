"""CFAN learns through the product's entry point: `trainer.train_and_evaluate` with the
shipped `demo_cfan` preset on the default demo records (issue 10), at the preset's own budget."""

import os

import pytest

# The shipped preset's own budget (32 px, 14 epochs): ~2-3 min on the shared 2 cores.
SEED = 0
# Measured with the shipped preset (tiny_bn backbone, visual_taste 16) on the default
# demo records (generator version 4), cold protocol, test split (432 reviews of 76
# unseen images), through `python -m tfaesthetic.train --experiment=demo_cfan --seed=S`:
#
#   seed  with-review AUC  no-review per-user AUC  agnostic per-user AUC  agnostic acc. (majority)  tag acc. (most frequent)
#   0     0.942            0.714                   0.613                  0.684 (0.553)             0.605 (0.211)
#   1     0.864            0.697                   0.630                  0.658 (0.553)             0.671 (0.211)
#   2     0.954            0.671                   0.590                  0.618 (0.553)             0.513 (0.211)
#
# (the same seed gives the same figures through train_and_evaluate and the CLI).
#
# What this test asserts, with room under the lowest measured figures:
# - the no-review (taste-profile + visual-taste) path beats the user-agnostic baseline
#   per user by at least 0.04 (measured +0.067 to +0.101) and reaches 0.62;
# - the with-review path reads the review (floor 0.80; measured 0.86-0.95);
# - the tag head learns the content (>= most frequent tag + 20 points; measured +30 to +46);
# - the user-agnostic head is above the majority class (measured +6.6 to +13.1 points).
WITH_REVIEW_FLOOR = 0.80
NO_REVIEW_FLOOR = 0.62
NO_REVIEW_MARGIN = 0.04  # no-review >= agnostic + 0.04
AGNOSTIC_MARGIN = 0.02  # agnostic accuracy >= majority + 2 points
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
    assert config.model.params["agnostic_residual"] and config.model.params["visual_taste"]  # the shipped preset's extensions
    assert config.model.backbone == "tiny_bn"
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
    assert figures["no_review_per_user_auc"] >= figures["agnostic_per_user_auc"] + NO_REVIEW_MARGIN, figures
    assert figures["agnostic_accuracy"] >= figures["majority"] + AGNOSTIC_MARGIN, figures
    assert figures["tag_accuracy"] >= figures["tag_majority"] + TAG_MARGIN, figures
    assert os.path.exists(os.path.join(str(tmp_path / "run"), "metrics.json"))
