"""MRACNN ablation on the demo records (a report, not a test).

Trains, with the same budget and the `tiny` backbone, the variants of

- Table III (seed 003): Text-CNN only (`text_only`), backbone only
  (`backbone_only`, the "VGG16" row), the attention vision stream alone
  (`vision_only`), backbone + Text-CNN without attention (`no_attention`, MFB
  fusion), and MRACNN with concatenation / element-wise sum / element-wise
  product / MFB fusion;
- Table I: recurrences T ∈ {1, 3, 5} and LSTM layers ∈ {1, 2, 3} (MFB fusion),

and reports the six metrics of §IV-A on the test split (mean over `--seeds`),
next to the training-prior baseline (the mean training distribution predicted
for every image). The demo records are small and synthetic: the table shows that
the variants run and learn on the same footing, not the paper's numbers.

Every row is the `demo` preset with the overrides of `SMALL` and of its variant,
trained and evaluated by `tfaesthetic.trainer.train_and_evaluate` (the product's
path: its optimizer and schedule, early stopping and best-epoch restore), one run
directory per row and seed under `--work_dir`.

Usage:
    python benchmarks/mracnn_ablation.py [--num_images 400] [--epochs 8] [--seeds 0]
        [--variants mfb,text_only,...] [--records_dir DIR] [--work_dir DIR]

Prints a Markdown table and writes `benchmarks/results/mracnn_ablation-<time>.md`
and `.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import results_io  # noqa: E402

#: The preset every row starts from.
PRESET = "demo"

# name -> (table, MRACNN keyword arguments: `variant` -> model.variant, the rest -> model.params)
VARIANTS = {
    "text_only": ("III", dict(variant="text_only")),
    "backbone_only": ("III", dict(variant="backbone_only")),
    "vision_only": ("III", dict(variant="vision_only")),
    "no_attention": ("III", dict(variant="no_attention", fusion="mfb")),
    "concat": ("III", dict(fusion="concat")),
    "sum": ("III", dict(fusion="sum")),
    "product": ("III", dict(fusion="product")),
    "mfb": ("I, III", dict(fusion="mfb")),  # also T = 3, 1 LSTM layer
    "T1": ("I", dict(recurrences=1)),
    "T5": ("I", dict(recurrences=5)),
    "lstm2": ("I", dict(lstm_layers=2)),
    "lstm3": ("I", dict(lstm_layers=3)),
}

# Small sizes for CPU training on the demo records (model.params over the preset's;
# the preset's backbone is the tiny one). T = 3 and one LSTM layer: the "mfb" row.
SMALL = dict(
    recurrences=3,
    lstm_layers=1,
    lstm_units=32,
    attention_units=32,
    embedding_dim=32,
    num_filters=16,
    mfb_k=4,
    mfb_o=64,
    fusion_units=64,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records_dir", default="", help="Records to use; default: demo records built under demo_records/.")
    parser.add_argument("--num_images", type=int, default=400, help="Demo images (80/10/10 split) when building.")
    parser.add_argument("--image_size", type=int, default=48)
    parser.add_argument("--max_len", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--seeds", default="0", help="Comma-separated training seeds; metrics are averaged.")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="Comma-separated subset of: " + ", ".join(VARIANTS))
    parser.add_argument("--work_dir", default="", help="Run directories (default: a temporary one).")
    parser.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    return parser.parse_args(argv)


def experiment(kwargs, args, seed):
    """The `PRESET` config of one row: the records and budget of `args`, `SMALL` and the row's kwargs."""
    from tfaesthetic import config as config_lib

    kwargs = dict(kwargs)
    overrides = {
        "data.records_dir": args.records_dir,
        "data.image_size": args.image_size,
        "data.max_len": args.max_len,
        "data.global_batch_size": args.batch_size,
        "model.variant": kwargs.pop("variant", "full"),
        "trainer.epochs": args.epochs,
        "trainer.learning_rate": args.learning_rate,
        "trainer.verbose": 0,
        "runtime.seed": seed,
    }
    overrides.update({f"model.params.{k}": v for k, v in {**SMALL, **kwargs}.items()})
    return config_lib.with_overrides(config_lib.get_experiment(PRESET), overrides)


def run_variant(name, kwargs, args, seed):
    """`train_and_evaluate` of one row and seed; returns its test metrics, parameters and training time."""
    import keras

    from tfaesthetic import trainer

    config = experiment(kwargs, args, seed)
    run_dir = os.path.join(args.work_dir, f"{name}-seed{seed}")
    summary = trainer.train_and_evaluate(config, run_dir, export=False)
    row = dict(summary["test"]["overall"])
    params = keras.saving.load_model(summary["model_file"]).count_params()
    row.update(params=int(params), train_seconds=summary["train_seconds"], epochs=summary["epochs"],
               best_epoch=summary["best_epoch"])
    return row


def prior_row(args, scale):
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data import build_dataset
    from tfaesthetic.metrics import evaluate_distributions

    config = DataConfig(records_dir=args.records_dir, features=("tokens",), max_len=args.max_len, global_batch_size=256)
    train = np.concatenate([y["distribution"] for _, y in build_dataset(config, False, split="train")])
    target = np.concatenate([y["distribution"] for _, y in build_dataset(config, False, split="test")])
    return evaluate_distributions(target, np.tile(train.mean(0), (len(target), 1)), scale=scale)["overall"]


def average(rows):
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float))]
    out = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    for k in ("srcc", "emd"):
        out[f"{k}_std"] = float(np.std([r[k] for r in rows]))
    out["count"] = rows[0]["count"]
    return out


def main(argv=None):
    args = parse_args(argv)
    from tfaesthetic.features import ScoreScale
    from tfaesthetic.metrics import format_table
    from tfaesthetic.records import demo
    from tfaesthetic.records.writer import read_manifest

    if not args.records_dir:
        args.records_dir = os.path.join(ROOT, "demo_records", f"ablation-{args.num_images}-{args.image_size}")
        demo.ensure_demo_records(args.records_dir, num_images=args.num_images, image_size=args.image_size)
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="mracnn_ablation-")
    manifest = read_manifest(args.records_dir)
    scale = ScoreScale.from_json(manifest["score_scale"])
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"Unknown variants {unknown}. Expected some of {list(VARIANTS)}.")

    rows = {"prior (constant)": prior_row(args, scale)}
    details = {}
    for name in names:
        table, kwargs = VARIANTS[name]
        runs = [run_variant(name, kwargs, args, seed) for seed in seeds]
        rows[name] = average(runs)
        details[name] = {"table": table, "kwargs": kwargs, "runs": runs}
        print(f"{name:14s} table {table:6s} EMD {rows[name]['emd']:.4f} SRCC {rows[name]['srcc']:.4f} "
              f"({rows[name]['train_seconds']:.0f} s)", flush=True)

    title = (
        f"MRACNN ablation, test split of {args.records_dir} ({manifest['splits']}), preset {PRESET} "
        f"(tiny backbone) through train_and_evaluate, up to {args.epochs} epochs, lr {args.learning_rate}, "
        f"batch {args.batch_size}, seeds {seeds}"
    )
    table = format_table(rows, title=title, row_header="variant")
    if len(seeds) > 1:
        spread = ["", f"Spread over the {len(seeds)} seeds (standard deviation):", "",
                  "| variant | SRCC std | EMD std |", "|---|---:|---:|"]
        spread += [f"| {name} | {rows[name]['srcc_std']:.4f} | {rows[name]['emd_std']:.4f} |" for name in names]
        table = table + "\n" + "\n".join(spread)
    print(table)
    stamp = results_io.utc_stamp()
    report = {
        "created": stamp,
        **results_io.run_facts(),
        "preset": PRESET,
        "args": vars(args),
        "model_sizes": SMALL,
        "rows": rows,
        "variants": details,
    }
    results_io.write_results(args.out_dir, f"mracnn_ablation-{stamp}", report, markdown=table)
    return report


if __name__ == "__main__":
    main()
