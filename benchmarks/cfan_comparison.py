"""Personalised-rating comparison on the demo records (a report, not a test).

The shape of seed 000 Fig. 8: BPR, VBPR, CFN-1task, CFAN-1task, CFAN-2task and
CFAN-3task (plus CFN-pure-2task), trained with the same budget on the demo records'
training split with the `tiny` backbone, evaluated on the held-out reviews (val +
test: images never seen in training, so every model uses its out-of-vocabulary image
row). Columns:

- AUC of the user-specific rating over all held-out reviews, and averaged per user
  (users whose held-out reviews hold both classes);
- accuracy of the user-specific rating (> 0.5) and of the user-agnostic rating
  (`cfan_3task` only, the Fig. 7 metric);
- for the CFAN variants, the per-user AUC of the no-review path
  (`CFAN.predict_without_review`: the learned per-user taste kernel instead of the
  review), the practical serving case.

The demo ratings are derived from the review texts, and CFAN reads the review, so its
with-review figures measure how well the review-conditioned attention carries the
review's verdict; the no-review column is the one comparable with BPR/VBPR, which
never see a review. The records are small and synthetic: the table shows that the
models run and learn on the same footing, not the paper's numbers.

Usage:
    python benchmarks/cfan_comparison.py [--num_images 240] [--epochs 25] [--seeds 0]
        [--models bpr,vbpr,...] [--records_dir DIR]

Prints a Markdown table and writes `benchmarks/results/cfan_comparison-<date>.md`
and `.json`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MODELS = ("bpr", "vbpr", "cfn_pure_2task", "cfn_1task", "cfan_1task", "cfan_2task", "cfan_3task")
LABELS = {
    "bpr": "BPR",
    "vbpr": "VBPR",
    "cfn_pure_2task": "CFN-pure-2task",
    "cfn_1task": "CFN-1task",
    "cfan_1task": "CFAN-1task",
    "cfan_2task": "CFAN-2task",
    "cfan_3task": "CFAN-3task",
}


def review_data(records_dir, split, training, seed, image_size, max_len, batch_size):
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data import build_dataset

    config = DataConfig(
        records_dir=records_dir,
        mode="review",
        features=("image", "image_index", "user_index", "review"),
        image_size=image_size,
        max_len=max_len,
        global_batch_size=batch_size,
        augment=training,
        cache=True,
        seed=seed,
        shuffle_buffer=1024,
    )
    return build_dataset(config, training, split=split)


def build_model(name, manifest, args, seed):
    from tfaesthetic.models.bpr import BPR, VBPR
    from tfaesthetic.models.cfan import CFAN

    if name == "bpr":
        return BPR.from_manifest(manifest, factor_dim=args.factor_dim, seed=seed)
    if name == "vbpr":
        return VBPR.from_manifest(
            manifest,
            factor_dim=args.factor_dim,
            visual_dim=args.factor_dim,
            backbone="tiny",
            image_size=args.image_size,
            backbone_trainable=True,  # no pretrained tiny weights: learn the features
            seed=seed,
        )
    return CFAN.from_manifest(
        manifest,
        variant=name,
        backbone="tiny",
        image_size=args.image_size,
        factor_dim=args.factor_dim,
        hidden_units=(args.factor_dim,),
        embedding_dim=args.factor_dim,
        gru_units=args.factor_dim,
        max_len=args.max_len,
        index_dropout=args.index_dropout,
        seed=seed,
    )


def run_one(name, records_dir, manifest, args, seed):
    import keras

    from tfaesthetic.metrics.ranking import evaluate_ranking

    keras.utils.set_random_seed(seed)
    model = build_model(name, manifest, args, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=model.default_losses(),
        loss_weights=model.default_loss_weights(),
    )
    data = lambda split, training: review_data(  # noqa: E731
        records_dir, split, training, seed, args.image_size, args.max_len, args.batch_size
    )
    start = time.time()
    model.fit(data("train", True).map(model.prepare_batch), epochs=args.epochs, verbose=0)
    train_seconds = time.time() - start
    held_out = data("val", False).concatenate(data("test", False))
    sizes = dict(num_users=manifest["num_users"], num_train_images=manifest["num_train_images"])
    result = evaluate_ranking(model, held_out, **sizes)
    result["train_seconds"] = train_seconds
    if hasattr(model, "predict_without_review") and "review" in model.input_keys:
        no_review = evaluate_ranking(model, held_out, predict_fn=model.predict_without_review, **sizes)
        result["no_review_auc"] = no_review["auc"]
        result["no_review_per_user_auc"] = no_review["per_user_auc"]
    return result


def mean_of(results, key):
    values = [r[key] for r in results if key in r and r[key] is not None and not np.isnan(r[key])]
    return float(np.mean(values)) if values else None


def fmt(value):
    return "–" if value is None else f"{value:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records_dir", default="", help="review records; default: build demo records in a temp dir")
    parser.add_argument("--num_images", type=int, default=240)
    parser.add_argument("--num_users", type=int, default=24)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--max_len", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--factor_dim", type=int, default=16)
    parser.add_argument("--index_dropout", type=float, default=0.5)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)

    from tfaesthetic.records import demo, writer

    records_dir = args.records_dir
    if not records_dir:
        records_dir = os.path.join(tempfile.gettempdir(), f"tfaesthetic_demo_{args.num_images}_{args.num_users}")
        # Demo images are rendered at 48 px and resized to --image_size by the pipeline.
        demo.ensure_demo_records(records_dir, num_images=args.num_images, image_size=48, num_users=args.num_users)
    manifest = writer.read_manifest(records_dir)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    names = [n for n in args.models.split(",") if n]
    unknown = set(names) - set(MODELS)
    if unknown:
        raise SystemExit(f"Unknown models {sorted(unknown)}. Expected some of {list(MODELS)}.")

    per_model = {}
    for name in names:
        per_model[name] = []
        for seed in seeds:
            result = run_one(name, records_dir, manifest, args, seed)
            per_model[name].append(result)
            print(
                f"{LABELS[name]:15s} seed {seed}: per-user AUC {fmt(result['per_user_auc'])}, "
                f"AUC {fmt(result['auc'])}, {result['train_seconds']:.0f}s",
                flush=True,
            )

    columns = [
        ("AUC", "auc"),
        ("per-user AUC", "per_user_auc"),
        ("rating acc.", "rating_accuracy"),
        ("agnostic acc.", "agnostic_accuracy"),
        ("no-review AUC", "no_review_auc"),
        ("no-review per-user AUC", "no_review_per_user_auc"),
        ("train s", "train_seconds"),
    ]
    lines = [
        f"Held-out reviews (val + test, unseen images): {per_model[names[0]][0]['num_examples']}; "
        f"users with both classes: {per_model[names[0]][0]['users_evaluated']}; seeds {seeds}; "
        f"{args.epochs} epochs, Adam {args.learning_rate}, tiny backbone, {args.image_size} px.",
        "",
        "| model | " + " | ".join(c for c, _ in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    summary = {}
    for name in names:
        summary[name] = {key: mean_of(per_model[name], key) for _, key in columns}
        cells = [fmt(summary[name][key]) if key != "train_seconds" else f"{summary[name][key]:.0f}" for _, key in columns]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print()
    print(table)

    os.makedirs(args.out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = os.path.join(args.out_dir, f"cfan_comparison-{stamp}")
    with open(base + ".md", "w") as f:
        f.write(table + "\n")
    with open(base + ".json", "w") as f:
        json.dump(
            {
                "args": vars(args),
                "records_dir": records_dir,
                "manifest_counts": {k: manifest.get(k) for k in ("num_users", "num_train_images", "num_images", "num_tags")},
                "host": platform.node(),
                "summary": summary,
                "runs": per_model,
            },
            f,
            indent=2,
            default=float,
        )
    print(f"\nWrote {base}.md and {base}.json")


if __name__ == "__main__":
    main()
