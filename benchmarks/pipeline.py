"""Input-pipeline benchmark (a report, not a test).

Measures, on one records directory (the demo records by default):

1. throughput, examples/s: `tfaesthetic.data.build_dataset` (training branch:
   interleave, shuffle, decode, resize, flip, batch, prefetch) against the naive way
   (read each image file, decode and resize with Pillow, tokenise in Python, stack
   into batches), on the same images and comments; the ratio is the figure;
2. peak resident memory (`resource.getrusage`) of one pipeline pass at two dataset
   sizes (x1 and x`--memory_factor`), each in its own subprocess: it must stay flat;
3. records bytes against source bytes (image files + comments as JSON lines).

Usage:
    python benchmarks/pipeline.py [--num_images 800] [--image_size 224] [--batch_size 32]

Prints a table and writes `benchmarks/results/pipeline-<host>-<date>.json`.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_MEMORY_CHILD = r"""
import json, resource, sys, time
import tensorflow as tf
from tfaesthetic.config import DataConfig
from tfaesthetic.data import build_dataset
records_dir, image_size, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
config = DataConfig(records_dir=records_dir, image_size=image_size, global_batch_size=batch_size, shuffle_buffer=2048, seed=0)
ds = build_dataset(config, is_training=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = 0
start = time.perf_counter()
for feats, labels in ds:
    n += int(feats["image"].shape[0])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({"examples": n, "seconds": seconds, "rss_before_pass_mb": before / 1024, "peak_rss_mb": peak / 1024}))
"""


def _build_records(out_dir, num_images, seed):
    """Demo records when the generator exists, else a small synthetic set."""
    try:
        from tfaesthetic.records import demo
    except ImportError:
        demo = None
    if demo is not None and hasattr(demo, "build_demo"):
        demo.build_demo(out_dir, num_images=num_images, seed=seed, num_shards=2)
        return "demo"
    _synthetic_records(out_dir, num_images, seed)
    return "synthetic"


def _synthetic_records(out_dir, num_images, seed, source_records=None):
    from PIL import Image

    from tfaesthetic import features
    from tfaesthetic.records.rejections import Rejections
    from tfaesthetic.records.writer import write_records

    rng = np.random.default_rng(seed)
    words = "sharp blurry lovely colours dark bright composition nice focus light subject".split()
    records = []
    for i in range(num_images):
        pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        comments = [
            features.Comment(text=" ".join(rng.choice(words, size=8)), user_index=int(rng.integers(0, 10)), rating=1)
            for _ in range(int(rng.integers(1, 6)))
        ]
        split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
        records.append(
            features.ImageRecord(
                image_id=str(i), split=split, encoded=buf.getvalue(), image_format="jpeg",
                votes=[int(v) for v in rng.integers(0, 20, size=10)], comments=comments,
            )
        )
    write_records(
        out_dir, records, scale=features.AVA_SCALE, users=[f"u{i}" for i in range(10)], tags=["a", "b"],
        source="synthetic", rejections=Rejections(), num_shards=2,
    )


def _read_records(records_dir):
    """(split, image_id, encoded, format, votes, tags, comments[(text, user, sentiment, rating)]) per record."""
    import tensorflow as tf

    from tfaesthetic.data.decoder import Decoder
    from tfaesthetic.data.reader import shard_paths
    from tfaesthetic.records.writer import read_manifest

    manifest = read_manifest(records_dir)
    decoder = Decoder()
    out = []
    for split in ("train", "val", "test"):
        if not manifest["splits"].get(split):
            continue
        for serialized in tf.data.TFRecordDataset(shard_paths(records_dir, split, manifest)):
            raw = decoder(serialized)
            out.append(
                dict(
                    split=split,
                    image_id=raw["image_id"].numpy().decode(),
                    encoded=raw["encoded"].numpy(),
                    format=raw["image_format"].numpy().decode(),
                    votes=raw["votes"].numpy().tolist(),
                    tags=raw["tags"].numpy().tolist(),
                    comments=[
                        dict(text=t.decode("utf-8"), user=int(u), sentiment=int(s), rating=int(r))
                        for t, u, s, r in zip(
                            raw["comment_text"].numpy(), raw["comment_user"].numpy(),
                            raw["comment_sentiment"].numpy(), raw["comment_rating"].numpy(),
                        )
                    ],
                )
            )
    return manifest, out


def _write_source(source_dir, rows):
    """The 'source' form of the data: one image file per image plus comments.jsonl."""
    os.makedirs(os.path.join(source_dir, "images"), exist_ok=True)
    total = 0
    with open(os.path.join(source_dir, "comments.jsonl"), "w", encoding="utf-8") as f:
        for row in rows:
            ext = {"jpeg": "jpg"}.get(row["format"], row["format"] or "bin")
            path = os.path.join(source_dir, "images", f"{row['image_id']}.{ext}")
            with open(path, "wb") as img:
                img.write(row["encoded"])
            total += len(row["encoded"])
            meta = {k: row[k] for k in ("image_id", "split", "votes", "tags", "comments")}
            meta["image_path"] = path
            f.write(json.dumps(meta, ensure_ascii=False) + "\n")
    total += os.path.getsize(os.path.join(source_dir, "comments.jsonl"))
    return total


def _write_scaled_records(out_dir, rows, manifest, factor):
    """Records with every image repeated `factor` times under new ids (memory test)."""
    from tfaesthetic import features
    from tfaesthetic.records.rejections import Rejections
    from tfaesthetic.records.writer import write_records

    records = []
    for k in range(factor):
        for row in rows:
            records.append(
                features.ImageRecord(
                    image_id=f"{row['image_id']}#{k}", split=row["split"], encoded=row["encoded"],
                    image_format=row["format"], votes=row["votes"], tags=row["tags"],
                    comments=[features.Comment(text=c["text"], user_index=c["user"], sentiment=c["sentiment"],
                                               rating=c["rating"]) for c in row["comments"]],
                )
            )
    scale = features.ScoreScale.from_json(manifest["score_scale"])
    write_records(
        out_dir, records, scale=scale, users=[str(i) for i in range(manifest["num_users"])],
        tags=[str(i) for i in range(manifest["num_tags"])], source="benchmark", rejections=Rejections(),
        num_shards=4, validate_images=False,
    )


def _python_tokenizer(vocab_path):
    with open(vocab_path, encoding="utf-8") as f:
        ids = {line.rstrip("\n"): i + 2 for i, line in enumerate(f)}
    word = re.compile(r"[^\W_]+")

    def tokenize(texts, max_len):
        out = []
        for t in texts:
            t = unicodedata.normalize("NFKC", t).casefold().replace("'", "").replace("\u2019", "")
            out.extend(ids.get(w, 1) for w in word.findall(t))
        out = out[:max_len]
        return out + [0] * (max_len - len(out))

    return tokenize


def naive_pass(source_dir, vocab_path, image_size, batch_size, max_len):
    """Reads files one by one, Pillow decode+resize, Python tokenisation, np.stack batches."""
    from PIL import Image

    tokenize = _python_tokenizer(vocab_path)
    with open(os.path.join(source_dir, "comments.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows = [r for r in rows if r["split"] == "train"]
    start = time.perf_counter()
    cpu = time.process_time()
    n = 0
    images, tokens, dists = [], [], []
    for row in rows:
        with open(row["image_path"], "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        images.append(np.asarray(image, np.float32))
        tokens.append(tokenize([c["text"] for c in row["comments"]], max_len))
        votes = np.asarray(row["votes"], np.float32)
        dists.append(votes / max(votes.sum(), 1e-12))
        if len(images) == batch_size:
            batch = (np.stack(images), np.asarray(tokens, np.int32), np.stack(dists))
            n += batch[0].shape[0]
            images, tokens, dists = [], [], []
    return n, time.perf_counter() - start, time.process_time() - cpu


def make_pipeline(records_dir, image_size, batch_size, max_len):
    """The training dataset (default training config: seed None, tf.data may reorder)."""
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data import build_dataset

    config = DataConfig(records_dir=records_dir, image_size=image_size, global_batch_size=batch_size, max_len=max_len)
    return build_dataset(config, is_training=True)


def pipeline_epoch(ds):
    """(examples, wall seconds, process CPU seconds: all tf.data threads included)."""
    start = time.perf_counter()
    cpu = time.process_time()
    n = 0
    for feats, _ in ds:
        n += int(feats["image"].shape[0])
    return n, time.perf_counter() - start, time.process_time() - cpu


def memory_pass(records_dir, image_size, batch_size):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, records_dir, str(image_size), str(batch_size)],
        capture_output=True, text=True, env=env, timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed on {records_dir}:\n{proc.stderr[-3000:]}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _dir_bytes(path, predicate=lambda name: True):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if predicate(n))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records_dir", default="", help="existing records; default: build demo records")
    parser.add_argument("--num_images", type=int, default=800)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_len", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5, help="timed (naive, pipeline) pairs after a warm-up")
    parser.add_argument("--memory_factor", type=int, default=4)
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    work = tempfile.mkdtemp(prefix="tfaesthetic-bench-")
    records_dir = args.records_dir
    kind = "given"
    if not records_dir:
        records_dir = os.path.join(work, "records")
        t = time.perf_counter()
        kind = _build_records(records_dir, args.num_images, seed=0)
        print(f"built {kind} records in {time.perf_counter() - t:.1f} s: {records_dir}")
    manifest, rows = _read_records(records_dir)
    source_dir = os.path.join(work, "source")
    source_bytes = _write_source(source_dir, rows)
    records_bytes = _dir_bytes(records_dir, lambda n: n.endswith(".tfrecord"))
    records_total = _dir_bytes(records_dir)
    vocab = os.path.join(records_dir, "vocab.txt")

    # The machine is shared, so load drifts: naive passes and pipeline epochs
    # alternate, and the ratio is taken per adjacent pair (median over pairs). The
    # first of each warms the file cache and tf.data's autotuner and is not counted.
    start = time.perf_counter()
    ds = make_pipeline(records_dir, args.image_size, args.batch_size, args.max_len)
    build_seconds = time.perf_counter() - start
    first = pipeline_epoch(ds)
    first_epoch_rate = first[0] / (first[1] + build_seconds)
    naive_pass(source_dir, vocab, args.image_size, args.batch_size, args.max_len)
    naive, piped = [], []
    for _ in range(args.repeats):
        naive.append(naive_pass(source_dir, vocab, args.image_size, args.batch_size, args.max_len))
        piped.append(pipeline_epoch(ds))
    naive_rates = [n / s for n, s, _ in naive]
    pipe_rates = [n / s for n, s, _ in piped]
    # CPU seconds per example do not depend on the load of a shared machine.
    naive_cpu = float(np.median([c / n for n, _, c in naive]))
    pipe_cpu = float(np.median([c / n for n, _, c in piped]))
    naive_rate = float(np.median(naive_rates))
    pipe_rate = float(np.median(pipe_rates))
    pair_ratio = float(np.median([p / q for p, q in zip(pipe_rates, naive_rates)]))

    big_dir = os.path.join(work, f"records_x{args.memory_factor}")
    small_dir = os.path.join(work, "records_x1")
    _write_scaled_records(small_dir, rows, manifest, 1)
    _write_scaled_records(big_dir, rows, manifest, args.memory_factor)
    mem_small = memory_pass(small_dir, args.image_size, args.batch_size)
    mem_big = memory_pass(big_dir, args.image_size, args.batch_size)

    n_train = manifest["splits"]["train"]
    result = {
        "host": socket.gethostname(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "records": kind,
        "num_images": len(rows),
        "train_examples": n_train,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "max_len": args.max_len,
        "throughput": {
            "naive_examples_per_s": naive_rate,
            "build_dataset_examples_per_s": pipe_rate,
            "ratio": pair_ratio,
            "ratio_definition": "median over alternating (naive pass, pipeline epoch) pairs of pipeline/naive",
            "build_dataset_first_epoch_incl_construction_examples_per_s": first_epoch_rate,
            "build_dataset_construction_seconds": build_seconds,
            "naive_cpu_ms_per_example": 1000 * naive_cpu,
            "build_dataset_cpu_ms_per_example": 1000 * pipe_cpu,
            "cpu_efficiency_ratio": naive_cpu / pipe_cpu,
            "naive_runs": [{"examples": n, "seconds": s, "cpu_seconds": c} for n, s, c in naive],
            "build_dataset_runs": [{"examples": n, "seconds": s, "cpu_seconds": c} for n, s, c in piped],
        },
        "memory": {
            "x1": dict(mem_small, train_images=n_train),
            f"x{args.memory_factor}": dict(mem_big, train_images=n_train * args.memory_factor),
            "growth_ratio": mem_big["peak_rss_mb"] / mem_small["peak_rss_mb"],
        },
        "size": {
            "source_bytes": source_bytes,
            "shard_bytes": records_bytes,
            "records_dir_bytes": records_total,
            "shards_over_source": records_bytes / source_bytes,
        },
        "targets": {"ratio_min": 3.0, "memory_growth_max": 1.10},
    }

    rows_out = [
        ("naive (files + Pillow + Python tokens), median", f"{naive_rate:,.0f} ex/s"),
        ("build_dataset (train branch), median", f"{pipe_rate:,.0f} ex/s"),
        ("ratio, median of paired runs (target >= 3x)", f"{pair_ratio:.2f}x"),
        ("build_dataset, 1st epoch incl. construction", f"{first_epoch_rate:,.0f} ex/s"),
        ("CPU ms/example: naive / build_dataset", f"{1000 * naive_cpu:.2f} / {1000 * pipe_cpu:.2f} "
         f"({naive_cpu / pipe_cpu:.2f}x less CPU)"),
        (f"peak RSS, {n_train} train images", f"{mem_small['peak_rss_mb']:,.0f} MB"),
        (f"peak RSS, {n_train * args.memory_factor} train images", f"{mem_big['peak_rss_mb']:,.0f} MB"),
        ("memory growth (target flat)", f"{result['memory']['growth_ratio']:.3f}x"),
        ("source bytes (images + comments.jsonl)", f"{source_bytes:,}"),
        ("shard bytes", f"{records_bytes:,} ({records_bytes / source_bytes:.2f}x source)"),
    ]
    width = max(len(a) for a, _ in rows_out)
    print(f"\ninput pipeline, {len(rows)} {kind} images, {args.image_size}px, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for a, b in rows_out:
        print(f"  {a:<{width}}  {b}")

    os.makedirs(args.out, exist_ok=True)
    name = f"pipeline-{socket.gethostname()}-{datetime.date.today().isoformat()}.json"
    path = os.path.join(args.out, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
