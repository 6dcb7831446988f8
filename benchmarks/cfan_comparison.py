"""Seed 000 Fig. 8 on the demo records, through the product: presets + `train_and_evaluate`.

Every row is one shipped preset (`demo_bpr`, `demo_vbpr`, `demo_cfan` with the
variant switched; `demo_cfan_warm` on the warm protocol, the preset `--model=cfan
--protocol=warm` starts from) trained and evaluated by `tfaesthetic.trainer.train_and_evaluate`,
exactly as `python -m tfaesthetic.train --experiment=... --variant=... --protocol=...
--seed=...` does: no training loop of its own. For both split protocols

- cold: the records' val/test images, never seen in training (every model uses its
  out-of-vocabulary image row; BPR cannot rank them, by construction);
- warm: held-out reviews of training images (`--protocol=warm`), the setting in which
  BPR and VBPR are meaningful;

it reports, from each run's `metrics.json`, the test split's figures per serving path:
with review (the paper's protocol; the demo's ratings derive from the reviews, so a
model reading the review can read the label), without review (known user, no review:
the practical case, and the only path BPR/VBPR/CFN have), the user-agnostic rating
ranked per user (the baseline), and the user-agnostic accuracy per image and per tag
(Fig. 7), the tag accuracy. Mean ± standard deviation over the seeds, plus one table
per seed.

Usage:
    python benchmarks/cfan_comparison.py [--records_dir DIR] [--seeds 0,1,2]
        [--models bpr,vbpr,...] [--protocols cold,warm] [--epochs N] [--out_dir DIR]

Without `--records_dir` the default demo records are built (seconds) in a temporary
directory. Writes `<out_dir>/cfan_comparison-<time>.md` and `.json`.
"""

from __future__ import annotations

import argparse
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

from benchmarks import results_io  # noqa: E402

#: Row -> (model family, variant), in the order of seed 000 Fig. 8; the preset is the
#: family's demo preset for the protocol (`tfaesthetic.config.family_preset`).
MODELS = {
    "bpr": ("bpr", "bpr"),
    "vbpr": ("vbpr", "vbpr"),
    "cfn_pure_2task": ("cfan", "cfn_pure_2task"),
    "cfn_1task": ("cfan", "cfn_1task"),
    "cfan_1task": ("cfan", "cfan_1task"),
    "cfan_2task": ("cfan", "cfan_2task"),
    "cfan_3task": ("cfan", "cfan_3task"),
}
LABELS = {
    "bpr": "BPR",
    "vbpr": "VBPR",
    "cfn_pure_2task": "CFN-pure-2task",
    "cfn_1task": "CFN-1task",
    "cfan_1task": "CFAN-1task",
    "cfan_2task": "CFAN-2task",
    "cfan_3task": "CFAN-3task",
}
#: Column -> (path in metrics.json "test", key).
COLUMNS = {
    "with-review AUC": ("with_review", "auc"),
    "with-review per-user AUC": ("with_review", "per_user_auc"),
    "no-review AUC": ("no_review", "auc"),
    "no-review per-user AUC": ("no_review", "per_user_auc"),
    "agnostic per-user AUC": ("agnostic", "per_user_auc"),
    "no-review rating acc.": ("no_review", "rating_accuracy"),
    "agnostic acc.": ("agnostic", "accuracy"),
    "majority": ("agnostic", "majority_accuracy"),
    "tag acc.": ("tag", "accuracy"),
}


def run_one(name, protocol, seed, records_dir, work_dir, epochs=None):
    """`train_and_evaluate` of one preset row; returns its metrics.json summary."""
    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer

    family, variant = MODELS[name]
    preset = config_lib.family_preset(family, demo=True, protocol=protocol)
    overrides = {
        "data.records_dir": records_dir,
        "model.variant": variant,
        "data.protocol": protocol,
        "runtime.seed": seed,
        "trainer.verbose": 0,
    }
    if epochs:
        overrides["trainer.epochs"] = epochs
    config = config_lib.with_overrides(config_lib.get_experiment(preset), overrides)
    run_dir = os.path.join(work_dir, f"{name}-{protocol}-seed{seed}")
    summary = trainer.train_and_evaluate(config, run_dir, export=False)
    summary.pop("table", None)
    return summary


def cell(summary, column):
    path, key = COLUMNS[column]
    block = (summary.get("test") or {}).get(path)
    if not block or block.get(key) is None:
        return None
    value = float(block[key])
    return None if np.isnan(value) else value


def fmt_mean(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def tables(runs, names, protocols, seeds):
    lines = []
    for protocol in protocols:
        header = "| model | " + " | ".join(COLUMNS) + " | train s |"
        rule = "|---|" + "---:|" * (len(COLUMNS) + 1)
        lines += [f"### {protocol} protocol: mean ± std over seeds {seeds}", "", header, rule]
        for name in names:
            rows = [runs[(name, protocol, s)] for s in seeds if (name, protocol, s) in runs]
            cells = [fmt_mean([cell(r, c) for r in rows]) for c in COLUMNS]
            seconds = np.mean([r["train_seconds"] for r in rows]) if rows else float("nan")
            lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {seconds:.0f} |")
        lines.append("")
        for seed in seeds:
            lines += [f"#### {protocol}, seed {seed}", "", header, rule]
            for name in names:
                r = runs.get((name, protocol, seed))
                if r is None:
                    continue
                cells = [fmt_mean([cell(r, c)]) for c in COLUMNS]
                lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {r['train_seconds']:.0f} |")
            lines.append("")
        tag_rows = [(n, runs.get((n, protocol, seeds[0]))) for n in names]
        tag_rows = [(n, r) for n, r in tag_rows if r and (r["test"].get("agnostic") or {}).get("accuracy_per_tag")]
        for n, r in tag_rows:
            per_tag = r["test"]["agnostic"]["accuracy_per_tag"]
            lines += [f"#### {LABELS[n]}, {protocol}, seed {seeds[0]}: user-agnostic accuracy per tag", "",
                      "| tag | n | accuracy |", "|---|---:|---:|"]
            lines += [f"| {t} | {row['count']} | {row['accuracy']:.3f} |" for t, row in per_tag.items()]
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records_dir", default="", help="review records; default: the default demo records in a temp dir")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--protocols", default="cold,warm")
    parser.add_argument("--epochs", type=int, default=0, help="override the presets' epochs (0 keeps them)")
    parser.add_argument("--work_dir", default="", help="run directories (default: a temp dir)")
    parser.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)

    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise SystemExit(f"Unknown models {unknown}. Expected some of {list(MODELS)}.")
    protocols = [p for p in args.protocols.split(",") if p]
    bad = sorted(set(protocols) - {"cold", "warm"})
    if bad:
        raise SystemExit(f"Unknown protocols {bad}. Expected some of ['cold', 'warm'].")
    seeds = [int(s) for s in args.seeds.split(",") if s]

    from tfaesthetic.records import demo, writer

    records_dir = args.records_dir
    if not records_dir:
        records_dir = os.path.join(tempfile.gettempdir(), "tfaesthetic_demo_default")
        demo.ensure_demo_records(records_dir)
    manifest = writer.read_manifest(records_dir)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="cfan_comparison-")

    runs = {}
    started = time.time()
    for protocol in protocols:
        for seed in seeds:
            for name in names:
                summary = run_one(name, protocol, seed, records_dir, work_dir, args.epochs or None)
                runs[(name, protocol, seed)] = summary
                figures = ", ".join(f"{c} {fmt_mean([cell(summary, c)])}" for c in list(COLUMNS)[:5])
                print(f"{LABELS[name]:15s} {protocol} seed {seed}: {figures}, {summary['train_seconds']:.0f}s", flush=True)

    header = (
        f"Test split of the demo records ({records_dir}: {manifest.get('num_images')} images, "
        f"{manifest.get('num_users')} users); presets demo_bpr / demo_vbpr / demo_cfan "
        f"(demo_cfan_warm on the warm protocol) through train_and_evaluate{f', epochs {args.epochs}' if args.epochs else ''}; "
        f"{time.time() - started:.0f} s in all on {platform.node()}."
    )
    table = header + "\n\n" + tables(runs, names, protocols, seeds)
    print()
    print(table)

    results_io.write_results(
        args.out_dir,
        f"cfan_comparison-{results_io.utc_stamp()}",
        {
            **results_io.run_facts(),
            "args": vars(args),
            "records_dir": records_dir,
            "runs": [
                {"model": n, "protocol": p, "seed": s, "test": r["test"], "best_epoch": r["best_epoch"],
                 "epochs": r["epochs"], "train_seconds": r["train_seconds"]}
                for (n, p, s), r in runs.items()
            ],
        },
        markdown=table,
    )


if __name__ == "__main__":
    main()
