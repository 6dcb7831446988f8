"""The language stream on real comments: prior, TF-IDF ridge and the text presets, side by side (a report).

Reads a JSONL file in the project's generic format (by default the real AVA-votes +
DPC-Captions development set, `ava_comments_dev.jsonl`, see its README), builds
records from it with the product's builder (`tfaesthetic.records.jsonl.build_jsonl`,
the library behind `records/build_jsonl.py`), and reports on its `val` split:

- the training-prior distribution (the mean training distribution for every image);
- TF-IDF bag of words + ridge regression on the mean score (scikit-learn): the
  reference recipe (unigrams, α = 1, the figures quoted in the data's README) and two
  tuned ones (1–2-grams, and 1–2-grams beside character 2–5-grams; α picked by 5-fold
  cross-validation on train);
- each text preset (`--presets`, default `mracnn_text_real` and the paper's
  `mracnn_text_only_ava`), trained through `tfaesthetic.trainer.train_and_evaluate`
  once per seed, reported as mean ± standard deviation over the seeds;

with SRCC, PLCC, accuracy, MAE, RMSE, EMD (r = 1) and the training wall time.

The reported split is never used for training or model selection: the file's `val`
lines are relabelled `test` in a scratch copy, and the builder then carves its
`--val_fraction` of the train images into val (the no-missing-validation rule of
`tfaesthetic.records.common.assign_splits`) for early stopping and the best epoch.
The review derivation's Eq. 7 figures (`manifest["review_check"]`) are printed too.

Usage:
    python benchmarks/real_comments.py [--jsonl PATH] [--seeds 0,1,2]
        [--presets mracnn_text_real,mracnn_text_only_ava] [--set trainer.epochs=20 ...]

Writes `benchmarks/results/real_comments-<date>.md` and `.json` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import results_io  # noqa: E402

_DEV_NAME = os.path.join("shared", "data", "ava_comments_dev", "ava_comments_dev.jsonl")
#: The development set: beside the checkout (`../shared/...`), else under /work.
DEFAULT_JSONL = next(
    (p for p in (os.path.join(os.path.dirname(ROOT), _DEV_NAME), os.path.join("/work", _DEV_NAME)) if os.path.exists(p)),
    os.path.join(os.path.dirname(ROOT), _DEV_NAME),
)
METRICS = ("srcc", "plcc", "accuracy", "mae", "rmse", "emd")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jsonl", default=DEFAULT_JSONL, help="JSONL with train/val lines (default: %(default)s).")
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated training seeds.")
    parser.add_argument("--presets", default="mracnn_text_real,mracnn_text_only_ava", help="Text presets to train.")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="Fraction of train carved into val.")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON",
        help="Config override for every preset, e.g. trainer.epochs=20 or model.params.bag_units=32 (repeatable).",
    )
    parser.add_argument("--work_dir", default="", help="Scratch directory (records, runs); default: a temporary one.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch directory.")
    parser.add_argument("--out_dir", default=os.path.join(ROOT, "benchmarks", "results"))
    return parser.parse_args(argv)


def relabel(src, dst):
    """Copies the JSONL with `val` lines relabelled `test` (the reported split); returns counts."""
    counts = {}
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            if line.strip():
                obj = json.loads(line)
                if obj.get("split") == "val":
                    obj["split"] = "test"
                counts[obj.get("split")] = counts.get(obj.get("split"), 0) + 1
                line = json.dumps(obj, ensure_ascii=False) + "\n"
            fout.write(line)
    return counts


def split_rows(records_dir, split):
    """`(texts, vote distributions)` of a records split, read back through the product's pipeline."""
    import tensorflow as tf

    from tfaesthetic import features
    from tfaesthetic.records import writer

    manifest = writer.read_manifest(records_dir)
    texts, votes = [], []
    for name in sorted(manifest["files"]["shards"]):
        if not name.startswith(f"{split}-"):
            continue
        for raw in tf.data.TFRecordDataset(os.path.join(records_dir, name)):
            example = tf.train.Example.FromString(raw.numpy())
            feature = example.features.feature
            texts.append(" ".join(t.decode("utf-8") for t in feature[features.COMMENT_TEXT].bytes_list.value))
            votes.append(list(feature[features.VOTES].int64_list.value))
    return texts, np.asarray(votes, dtype=np.float64)


def mean_rows(rows, keys=METRICS + ("train_seconds",)):
    out = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
        if values:
            out[key] = float(np.mean(values))
            out[f"{key}_std"] = float(np.std(values))
    out["runs"] = len(rows)
    return out


def prior_row(train_votes, test_votes, scale):
    from tfaesthetic.metrics import evaluate_distributions

    q = train_votes / train_votes.sum(1, keepdims=True)
    return evaluate_distributions(test_votes, np.tile(q.mean(0), (len(test_votes), 1)), scale=scale)["overall"]


def ridge_rows(train_texts, train_votes, test_texts, test_votes, scale):
    """TF-IDF + ridge on the mean score: the reference recipe and a cross-validated one."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline, make_union

    from tfaesthetic.metrics.evaluation import pearson, spearman

    values = np.asarray(scale.values)
    y_train = train_votes @ values / train_votes.sum(1)
    y_test = test_votes @ values / test_votes.sum(1)

    def row(pred):
        error = pred - y_test
        return {
            "count": len(y_test), "srcc": spearman(y_test, pred), "plcc": pearson(y_test, pred),
            "accuracy": float(np.mean((y_test > scale.threshold) == (pred > scale.threshold))),
            "mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2))), "emd": None,
        }

    started = time.time()
    reference = make_pipeline(TfidfVectorizer(sublinear_tf=True), Ridge(alpha=1.0)).fit(train_texts, y_train)
    rows = {"TF-IDF ridge (unigrams, α=1)": {**row(reference.predict(test_texts)), "train_seconds": time.time() - started}}
    started = time.time()
    search = GridSearchCV(
        make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2), Ridge()),
        {"ridge__alpha": [0.3, 1.0, 3.0, 10.0]}, cv=5, scoring="neg_mean_squared_error",
    ).fit(train_texts, y_train)
    alpha = search.best_params_["ridge__alpha"]
    rows[f"TF-IDF ridge (1-2-grams, α={alpha:g} by 5-fold CV)"] = {
        **row(search.predict(test_texts)), "train_seconds": time.time() - started,
    }
    # The strongest linear reference found: word 1-2-grams beside character 2-5-grams
    # within words (the bag's subwords), each block L2-normalised.
    started = time.time()
    search = GridSearchCV(
        make_pipeline(
            make_union(
                TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
                TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=2),
            ),
            Ridge(),
        ),
        {"ridge__alpha": [1.0, 3.0, 10.0, 30.0]}, cv=5, scoring="neg_mean_squared_error",
    ).fit(train_texts, y_train)
    alpha = search.best_params_["ridge__alpha"]
    rows[f"TF-IDF ridge (1-2-grams + character 2-5-grams, α={alpha:g} by 5-fold CV)"] = {
        **row(search.predict(test_texts)), "train_seconds": time.time() - started,
    }
    return rows


def run_preset(name, seed, records_dir, work_dir, overrides):
    from tfaesthetic import config as config_lib
    from tfaesthetic import trainer

    config = config_lib.get_experiment(name)
    config = config_lib.with_overrides(
        config, {"data.records_dir": records_dir, "runtime.seed": seed, "trainer.verbose": 0, **overrides}
    )
    run_dir = os.path.join(work_dir, "runs", f"{name}-seed{seed}")
    shutil.rmtree(run_dir, ignore_errors=True)
    summary = trainer.train_and_evaluate(config, run_dir, export=False)
    row = dict(summary["test"]["overall"])
    row.update(
        train_seconds=summary["train_seconds"], epochs_run=summary["epochs_run"], best_epoch=summary["best_epoch"],
    )
    # The carved val's SRCC at the best epoch: the figure to choose settings on (never the reported split).
    history, best = summary.get("history") or {}, summary["best_epoch"]
    key = next((k for k in sorted(history) if k.startswith("val_") and k.endswith("srcc")), None)
    if key is not None and best is not None and 0 <= best < len(history[key]):
        row["carved_val_srcc"] = float(history[key][best])
    return row


def fmt(row, key, scale=1.0, digits=3):
    if row.get(key) is None:
        return "–"
    text = f"{scale * row[key]:.{digits}f}"
    if row.get(f"{key}_std") is not None and row.get("runs", 1) > 1:
        text += f" ± {scale * row[f'{key}_std']:.{digits}f}"
    return text


def markdown(rows, title):
    lines = [f"### {title}", "", "| method | SRCC | PLCC | accuracy (%) | MAE | RMSE | EMD (r=1) | train (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {fmt(row, 'srcc')} | {fmt(row, 'plcc')} | {fmt(row, 'accuracy', 100, 1)} | "
            f"{fmt(row, 'mae')} | {fmt(row, 'rmse')} | {fmt(row, 'emd', 1, 4)} | {fmt(row, 'train_seconds', 1, 0)} |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isfile(args.jsonl):
        raise SystemExit(f"JSONL file not found. Received: --jsonl={args.jsonl}")
    from tfaesthetic.features import ScoreScale
    from tfaesthetic.records import common, jsonl
    from tfaesthetic.records.rejections import Rejections

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="real_comments-")
    os.makedirs(work_dir, exist_ok=True)
    try:
        relabelled = os.path.join(work_dir, "relabelled.jsonl")
        line_splits = relabel(args.jsonl, relabelled)
        records_dir = os.path.join(work_dir, "records")
        shutil.rmtree(records_dir, ignore_errors=True)
        rejections = Rejections()
        started = time.time()
        manifest = jsonl.build_jsonl(
            records_dir, relabelled, val_fraction=args.val_fraction, test_fraction=0.0, num_shards=1,
            rejections=rejections, command_line=f"benchmarks/real_comments.py --jsonl={args.jsonl}",
        )
        build_seconds = time.time() - started
        print(common.report(manifest, records_dir, rejections), flush=True)
        scale = ScoreScale.from_json(manifest["score_scale"])
        train_texts, train_votes = split_rows(records_dir, "train")
        test_texts, test_votes = split_rows(records_dir, "test")

        prior = prior_row(train_votes, test_votes, scale)
        prior.update(srcc=0.0, plcc=0.0)  # a constant prediction: no correlation (undefined, reported as 0)
        rows = {"training prior (constant)": {**prior, "train_seconds": 0.0}}
        rows.update(ridge_rows(train_texts, train_votes, test_texts, test_votes, scale))
        runs = {}
        for name in presets:
            runs[name] = []
            for seed in seeds:
                runs[name].append(run_preset(name, seed, records_dir, work_dir, overrides))
                r = runs[name][-1]
                print(f"{name} seed {seed}: SRCC {r['srcc']:.4f} PLCC {r['plcc']:.4f} EMD {r['emd']:.4f} "
                      f"acc {r['accuracy']:.4f} ({r['train_seconds']:.0f} s, {len(r['epochs_run'])} epochs; "
                      f"carved-val SRCC {r.get('carved_val_srcc', float('nan')):.4f})", flush=True)
            rows[f"`{name}`"] = mean_rows(runs[name])
        title = (
            f"val split of {os.path.basename(args.jsonl)} ({manifest['splits']['test']} images; trained on "
            f"{manifest['splits']['train']}, early stopping on {manifest['splits']['val']} carved from train), "
            f"mean ± std over seeds {seeds}" + (f", overrides {overrides}" if overrides else "")
        )
        table = markdown(rows, title)
        check = manifest.get("review_check") or {}
        if check:
            table += "\n\n" + check_lines(check)
        print(table)
        stamp = results_io.utc_stamp()
        report = {
            "created": stamp, **results_io.run_facts(),
            "cpus": os.cpu_count(), "load": os.getloadavg(), "args": vars(args), "jsonl_splits": line_splits,
            "record_splits": manifest["splits"], "build_seconds": build_seconds, "rows": rows, "runs": runs,
            "review_check": check, "consistency": manifest.get("consistency"),
        }
        results_io.write_results(args.out_dir, f"real_comments-{stamp}", report, markdown=table)
        return report
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def check_lines(check):
    """The Eq. 7 figures of the review derivation beside its references."""
    lines = ["| review derivation (all splits) | Eq. 7 consistency (%) |", "|---|---:|"]
    for key, label in (("derived", "derived ratings (tfaesthetic.records.reviews)"), ("all_good", 'every comment "good"'),
                       ("all_good_same_images", 'every comment "good", on the images with a derived rating'),
                       ("vader_sign", "VADER compound sign")):
        if check.get("consistency", {}).get(key) is not None:
            lines.append(f"| {label} | {100 * check['consistency'][key]:.2f} |")
    srcc = check.get("share_good_srcc", {})
    if srcc:
        lines += ["", "| per image, SRCC with the mean vote | SRCC |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in srcc.items() if v is not None]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
