"""CFAN learns through the product's entry point: `trainer.train_and_evaluate` with the
shipped `demo_cfan` preset on the default demo records (issue 10), at a reduced budget."""

import os

import pytest

# The preset's full budget (16 epochs at 64 px) took 485-541 s on the shared 2 cores
# (load 4-8); CI runs a reduced budget of the same preset on the same records: 48 px
# inputs (the tiny backbone's native size, ~0.55x the compute) and 12 epochs (180 s at
# load ~3). Every other setting is the preset's.
REDUCED_BUDGET = {"data.image_size": 48, "trainer.epochs": 12}
SEED = 0
# Measured with this reduced budget (seed 0, cold protocol, test split: 431 reviews of
# 76 unseen images, 39 users; agnostic_residual on, as shipped):
#
#   with-review AUC  no-review per-user AUC  agnostic per-user AUC  agnostic acc. (majority)  tag acc. (most frequent)  best epoch
#   0.869            0.612                   0.617                  0.632 (0.553)             0.250 (0.211)             11
#   0.624            0.608                   0.594                  0.645 (0.553)             0.250 (0.211)             4
#   0.601            0.560                   0.532                  0.526 (0.553)             (CI run)
#
# and with the preset's full budget (64 px, 16 epochs), seeds 0 / 1 / 2: with-review AUC
# 0.981 / 0.971 / 0.928, no-review per-user AUC 0.591 / 0.596 / 0.641 vs agnostic
# 0.620 / 0.593 / 0.604.
# Training is not bit-reproducible on CPU (parallel reductions): three runs of the same
# seed at the reduced budget gave with-review AUC 0.60-0.87 (when the review-reading
# path turns on late, the best epoch comes early). What this test can assert without
# flaking, with room under the lowest run:
# - the with-review path beats chance (0.55; measured 0.60-0.87, full budget 0.93-0.98);
# - the no-review (taste-profile) path is above chance (0.52; measured 0.56-0.61) and
#   within 0.08 of the user-agnostic baseline (measured -0.005 to +0.03). It does NOT
#   yet beat that baseline by a margin on these records (issue 10's open target), so
#   the test does not claim it;
# - the user-agnostic and tag heads are not worse than their majority-class references
#   by more than 5 points (agnostic measured -2.7 to +9.2 points; tag +3.9): at this
#   budget they do not learn reliably, so these are sanity floors, not learning claims.
WITH_REVIEW_FLOOR = 0.55
NO_REVIEW_FLOOR = 0.52
NO_REVIEW_TOLERANCE = 0.08  # no-review >= agnostic - 0.08
AGNOSTIC_MARGIN = -0.05  # agnostic accuracy >= majority - 5 points
TAG_MARGIN = -0.05  # tag accuracy >= most frequent tag - 5 points


@pytest.mark.slow
def test_demo_cfan_preset_learns_with_and_without_review(tmp_path):
    """CFAN-3task, cold protocol (test images never seen in training), reduced budget.

    Also checks the defect of issue 10 is gone: the taste-profile regulariser once
    inflated the monitored val_loss and early stopping kept epoch 1's chance-level
    weights; the best epoch must now come late.
    """
    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer
    from tfaesthetic.records import demo

    records = str(tmp_path / "demo_records")
    demo.ensure_demo_records(records)  # the default size, as the no-flag run builds it
    overrides = {"data.records_dir": records, "runtime.seed": SEED, "trainer.verbose": 0, **REDUCED_BUDGET}
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
