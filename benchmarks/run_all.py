"""The performance suite: every figure a ratio measured side by side in one run.

    python benchmarks/run_all.py [--quick]

Sections (each a ratio of two things timed in this run, interleaved A B A B ... so
that load from other processes hits both sides alike; medians reported):

- pipeline: `build_dataset` vs the naive way (Pillow + Python tokens), and peak
  RSS of a pipeline pass at two dataset sizes (`benchmarks/pipeline.py`);
- input wait: a training epoch fed by `build_dataset` vs the same steps fed one
  batch held in memory (`1 - t_memory / t_pipeline` is the share of the step
  spent waiting for input);
- head overhead: one training step (`train_on_batch`, fixed batch) of MRACNN vs
  the same backbone + global average pooling + dense softmax; CFAN-3task vs the
  CF-only CFN-1task;
- compute utilisation: achieved GFLOP/s of the MRACNN forward pass (FLOPs counted
  by TF's graph profiler, `tf.compat.v1.profiler` float_operation, cross-checked
  against the analytic VGG16 count) vs a float32 matmul's GFLOP/s;
- serving: the exported SavedModel's raw-input signature (encoded bytes + comment
  strings) called in a fresh process vs the in-process Keras model (a
  `tf.function` of its call) on the decoded inputs, batch 1 and 32, p50/p95;
- feature cache: an epoch of head-only training from the cached features vs an
  end-to-end epoch with the frozen backbone.

Writes `benchmarks/results/<host>-<date>.json` and prints a table with the targets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "benchmarks")):
    if p not in sys.path:
        sys.path.insert(0, p)

from benchmarks import results_io  # noqa: E402

TARGETS = {
    "pipeline_vs_naive": (">=", 4.0),
    "input_wait_fraction": ("<", 0.05),
    "mracnn_step_over_backbone_step": ("<=", 1.25),
    "mracnn_forward_fraction_of_matmul": (">=", 0.40),
    "serving_raw_over_inprocess_b32_p50": ("<=", 1.2),
    "feature_cache_speedup": (">=", 10.0),
    "memory_growth": ("<=", 1.10),
}


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def interleaved(fns, rounds):
    """Runs each function once per round, in turn (A B A B ...); returns the lists of results."""
    out = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            out[i].append(fn())
    return out


def _timed(fn):
    def run():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def _median(xs):
    return float(np.median(xs))


# ----------------------------------------------------------------------------- data


def build_records(work, num_images):
    from tfaesthetic.records import demo

    path = os.path.join(work, "records")
    demo.build_demo(path, num_images=num_images, image_size=64, num_users=24, seed=0, num_shards=2)
    with open(os.path.join(path, "manifest.json")) as f:
        return path, json.load(f)


def data_config(records, size, batch, max_len, **kw):
    from tfaesthetic.config import DataConfig

    return DataConfig(records_dir=records, image_size=size, global_batch_size=batch, max_len=max_len, **kw)


def mracnn(manifest, backbone, size, max_len, **kw):
    from tfaesthetic.models.mracnn import MRACNN

    return MRACNN(vocab_size=manifest["vocab_size"], num_bins=manifest["score_scale"]["num_bins"],
                  backbone=backbone, image_size=size, max_len=max_len, **kw)


def compile_emd(model, **kw):
    import keras

    from tfaesthetic.losses.emd import EMD

    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss={"distribution": EMD(r=2)}, metrics=None, **kw)


# ----------------------------------------------------------------------------- sections


def section_pipeline(args):
    import pipeline

    argv = ["--num_images", str(args.pipeline_images), "--image_sizes", args.pipeline_sizes,
            "--repeats", str(args.rounds), "--memory_factor", "4"]
    result = pipeline.main(argv)
    best = max(result["throughput"], key=lambda t: t["image_size"])
    return {
        "ratio": best["ratio"],
        "no_cache_ratio": best["no_cache_ratio"],
        "first_epoch_ratio": best["first_epoch_ratio"],
        "default_config_caches": best["default_config_caches"],
        "review_mode": result["review_mode"],
        "review_stall": result["review_stall"],
        "image_size": best["image_size"],
        "per_size": {t["image_size"]: t["ratio"] for t in result["throughput"]},
        "cpu_efficiency_ratio": best["cpu_efficiency_ratio"],
        "memory_growth": result["memory"]["growth_ratio"],
        "memory": result["memory"],
        "details": result,
    }


def section_input_wait(args, records, manifest):
    """Epoch fed by build_dataset vs the same steps fed from one in-memory batch."""
    import keras
    import tensorflow as tf

    from tfaesthetic.data import build_dataset

    results = {}
    for backbone, size, batch in args.input_wait_configs:
        keras.utils.set_random_seed(0)
        cfg = data_config(records, size, batch, 64)
        # At least 40 steps per timed epoch (the data repeats): the demo split's 5 steps
        # are shorter than the noise of fit()'s per-epoch start on a shared machine.
        steps = max(40, manifest["splits"]["train"] // batch)
        model = mracnn(manifest, backbone, size, 64, lstm_units=128, attention_units=128, embedding_dim=50,
                       num_filters=50, mfb_o=200)
        compile_emd(model)
        real = build_dataset(cfg, True).repeat()
        one = next(iter(build_dataset(cfg, True)))
        memory = tf.data.Dataset.from_tensors(one).repeat()
        model.fit(real, steps_per_epoch=2, epochs=1, verbose=0)
        model.fit(memory, steps_per_epoch=2, epochs=1, verbose=0)
        # Each step's time, batch fetch included (the train function pulls its batch): fit()'s
        # own start-up (0.05 or ~2.5 s, on either side at random on this machine) stays out.
        steps_s = []

        class StepTimes(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                steps_s[-1] += time.perf_counter() - self.start

        def epoch(ds):
            steps_s.append(0.0)
            start = time.perf_counter()
            model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[StepTimes()])
            return time.perf_counter() - start, steps_s[-1]

        t_real, t_mem = interleaved([lambda: epoch(real), lambda: epoch(memory)], max(args.rounds, 9))
        waits = [max(0.0, 1.0 - m[1] / r[1]) for r, m in zip(t_real, t_mem)]
        epoch_waits = [max(0.0, 1.0 - m[0] / r[0]) for r, m in zip(t_real, t_mem)]
        results[f"{backbone}@{size}px_b{batch}"] = {
            "steps": steps, "pipeline_epoch_s": [r[0] for r in t_real], "memory_epoch_s": [m[0] for m in t_mem],
            "pipeline_steps_s": [r[1] for r in t_real], "memory_steps_s": [m[1] for m in t_mem],
            "input_wait_fraction": _median(waits), "input_wait_per_round": waits,
            "input_wait_fraction_from_epoch_times": _median(epoch_waits),
        }
        _log(f"input wait {backbone}@{size}: {_median(waits):.3f}")
    worst = max(r["input_wait_fraction"] for r in results.values())
    return {"input_wait_fraction": worst, "configs": results,
            "method": "1 - t(steps fed one in-memory batch) / t(same steps fed by build_dataset), same model; "
                      "summed step times (batch fetch included, fit() start-up excluded), median over rounds"}


def _fixed_batch(records, manifest, size, batch, max_len, mode="image", features=("image", "tokens")):
    from tfaesthetic.data import build_dataset

    cfg = data_config(records, size, batch, max_len, mode=mode, features=features)
    return next(iter(build_dataset(cfg, True)))


def _step_time(model, x, y, steps):
    model.train_on_batch(x, y)  # trace + warm-up

    def run():
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        return (time.perf_counter() - start) / steps

    return run


def section_head_overhead(args, records, manifest):
    import keras

    size, batch = args.vgg_size, 8
    x, y = _fixed_batch(records, manifest, size, batch, 200)
    keras.utils.set_random_seed(0)
    full = mracnn(manifest, "vgg16", size, 200)
    compile_emd(full, jit_compile=False)
    keras.utils.set_random_seed(0)
    alone = mracnn(manifest, "vgg16", size, 200, variant="backbone_only")
    compile_emd(alone, jit_compile=False)
    t_full, t_alone = interleaved([_step_time(full, x, y, args.steps), _step_time(alone, {"image": x["image"]}, y, args.steps)],
                                  args.rounds)
    ratios = [a / b for a, b in zip(t_full, t_alone)]
    out = {"mracnn_step_s": t_full, "vgg16_gap_dense_step_s": t_alone, "ratio": _median(ratios),
           "image_size": size, "batch": batch}
    _log(f"head overhead MRACNN/VGG16: {out['ratio']:.3f}")
    del full, alone
    keras.backend.clear_session()

    # CFAN-3task vs CFN-1task (CF only, no review / attention).
    from tfaesthetic.models.cfan import CFAN

    feats = ("image", "image_index", "user_index", "review")
    xr, yr = _fixed_batch(records, manifest, size, batch, 200, mode="review", features=feats)
    models = {}
    for variant in ("cfan_3task", "cfn_1task"):
        keras.utils.set_random_seed(0)
        m = CFAN.from_manifest(manifest, variant=variant, backbone="vgg16", image_size=size, max_len=200, seed=0)
        m.compile(optimizer=keras.optimizers.SGD(0.005), loss=m.default_losses(), loss_weights=m.default_loss_weights())
        xb, yb = m.prepare_batch(xr, yr)
        models[variant] = _step_time(m, xb, yb, args.steps)
    t_cfan, t_cf = interleaved([models["cfan_3task"], models["cfn_1task"]], args.rounds)
    out["cfan"] = {"cfan_3task_step_s": t_cfan, "cfn_1task_step_s": t_cf,
                   "ratio": _median([a / b for a, b in zip(t_cfan, t_cf)]), "image_size": size, "batch": batch}
    _log(f"CFAN-3task / CFN-1task: {out['cfan']['ratio']:.3f}")
    keras.backend.clear_session()
    return out


def graph_flops(fn, *specs):
    """FLOPs of a traced function, counted by TF's graph profiler (float_operation)."""
    import tensorflow as tf

    graph = tf.function(fn).get_concrete_function(*specs).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=opts).total_float_ops)


def vgg16_conv_flops(size):
    """Analytic FLOPs (2 x multiply-adds) of VGG16's 13 convolutions at `size` px."""
    cfg = [(3, 64), (64, 64), "p", (64, 128), (128, 128), "p", (128, 256), (256, 256), (256, 256), "p",
           (256, 512), (512, 512), (512, 512), "p", (512, 512), (512, 512), (512, 512), "p"]
    total, s = 0, size
    for c in cfg:
        if c == "p":
            s //= 2
            continue
        total += 2 * s * s * 9 * c[0] * c[1]
    return total


def section_utilisation(args, records, manifest):
    import keras
    import tensorflow as tf

    size, batch = args.vgg_size, 16
    keras.utils.set_random_seed(0)
    model = mracnn(manifest, "vgg16", size, 200)
    x, _ = _fixed_batch(records, manifest, size, batch, 200)
    specs = {"image": tf.TensorSpec([batch, size, size, 3], tf.float32), "tokens": tf.TensorSpec([batch, 200], tf.int32)}
    flops = graph_flops(lambda inp: model(inp, training=False), specs)
    forward = tf.function(lambda inp: model(inp, training=False), jit_compile=False)
    forward(x)
    n = 4096  # large enough to reach the BLAS kernels' peak on a few cores
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n]) / n ** 0.5  # keeps the chained product's scale
    reps = 2

    @tf.function
    def matmuls(a, b):
        # A chain (each product feeds the next): identical independent matmuls
        # would be merged by Grappler's common-subexpression elimination.
        for _ in range(reps):
            a = tf.matmul(a, b)
        return a

    matmuls(a, b).numpy()
    t_mm, t_fw = interleaved([_timed(lambda: matmuls(a, b).numpy()),
                              _timed(lambda: tf.nest.map_structure(lambda t: t.numpy(), forward(x)))], args.rounds)
    mm_gflops = [2 * n ** 3 * reps / t / 1e9 for t in t_mm]
    fw_gflops = [flops / t / 1e9 for t in t_fw]
    out = {
        "flops_counted_by": "tf.compat.v1.profiler float_operation on the traced forward graph",
        "forward_gflop": flops / 1e9, "vgg16_conv_gflop_analytic": vgg16_conv_flops(size) * batch / 1e9,
        "forward_s": t_fw, "matmul_s": t_mm, "matmul_gflops": _median(mm_gflops), "forward_gflops": _median(fw_gflops),
        "fraction": _median([f / m for f, m in zip(fw_gflops, mm_gflops)]), "image_size": size, "batch": batch,
        "matmul": f"{reps} x {n}x{n} float32",
    }
    _log(f"utilisation {out['forward_gflops']:.1f} / {out['matmul_gflops']:.1f} GFLOP/s = {out['fraction']:.2f}")
    keras.backend.clear_session()
    return out


_SERVE_CHILD = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (ops of the exported tokeniser)
export_dir, inputs_path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = np.load(inputs_path, allow_pickle=True)
fn = tf.saved_model.load(export_dir).signatures["serving_default"]
out = {}
for b in (1, 32):
    images = tf.constant(list(data["images"][:b]))
    comments = tf.constant(list(data["comments"][:b]))
    for _ in range(3):
        fn(image_bytes=images, comments=comments)
    times = []
    for _ in range(reps):
        s = time.perf_counter(); r = fn(image_bytes=images, comments=comments); r["distribution"].numpy()
        times.append(time.perf_counter() - s)
    out[b] = times
print("RESULT " + json.dumps(out))
"""


def section_serving(args, records, manifest, work):
    import keras
    import tensorflow as tf

    from tfaesthetic.data import parser as parser_lib
    from tfaesthetic.data.decoder import Decoder
    from tfaesthetic.data.reader import shard_paths
    from tfaesthetic.serving.export import export_model

    backbone, size = args.serving_backbone, args.serving_size
    keras.utils.set_random_seed(0)
    model = mracnn(manifest, backbone, size, 200)
    path = export_model(model, records, os.path.join(work, "export"), model_name="bench", version=1)
    dec = Decoder(("encoded", "comment_text", "comment_tokens"))
    raws = [dec(s) for s in tf.data.TFRecordDataset(shard_paths(records, "train")).take(32)]
    images = np.array([r["encoded"].numpy() for r in raws], dtype=object)
    comments = np.array([b" ".join(r["comment_text"].numpy().tolist()) for r in raws], dtype=object)
    inputs_path = os.path.join(work, "serving_inputs.npy.npz")
    np.savez(inputs_path, images=images, comments=comments)
    decoded = {"image": tf.stack([parser_lib.decode_image(r["encoded"], size) for r in raws]),
               "tokens": tf.stack([parser_lib.join_tokens(r["comment_tokens"], 200) for r in raws])}
    call = tf.function(lambda inp: model(inp, training=False), reduce_retracing=True)

    def in_process():
        out = {}
        for b in (1, 32):
            x = {k: v[:b] for k, v in decoded.items()}
            for _ in range(3):
                call(x)
            times = []
            for _ in range(args.serving_reps):
                s = time.perf_counter()
                call(x)["distribution"].numpy()
                times.append(time.perf_counter() - s)
            out[b] = times
        return out

    def fresh_process():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run([sys.executable, "-c", _SERVE_CHILD, path, inputs_path, str(args.serving_reps)],
                              capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
        return {int(k): v for k, v in json.loads(line[7:]).items()}

    served, local = interleaved([fresh_process, in_process], args.rounds)
    out = {"backbone": backbone, "image_size": size, "reps_per_round": args.serving_reps}
    for b in (1, 32):
        s = [t for r in served for t in r[b]]
        l_ = [t for r in local for t in r[b]]
        out[f"b{b}"] = {
            "raw_saved_model_p50_ms": 1e3 * np.percentile(s, 50), "raw_saved_model_p95_ms": 1e3 * np.percentile(s, 95),
            "in_process_p50_ms": 1e3 * np.percentile(l_, 50), "in_process_p95_ms": 1e3 * np.percentile(l_, 95),
            "ratio_p50": float(np.percentile(s, 50) / np.percentile(l_, 50)),
            "ratio_p95": float(np.percentile(s, 95) / np.percentile(l_, 95)),
        }
        _log(f"serving b{b}: raw/in-process p50 {out[f'b{b}']['ratio_p50']:.2f}")
    keras.backend.clear_session()
    return out


def section_feature_cache(args, records, manifest, work):
    import keras

    from tfaesthetic.data import build_dataset
    from tfaesthetic.data import feature_cache as fc

    size, batch = args.vgg_size, 8
    keras.utils.set_random_seed(0)
    model = mracnn(manifest, "vgg16", size, 200, trainable_backbone=False)
    cfg = data_config(records, size, batch, 200, augment=False)
    cache_dir = os.path.join(work, "feature_cache")
    start = time.perf_counter()
    cache, _ = fc.ensure_feature_cache(cache_dir, model.backbone_model, cfg, backbone_name="vgg16", splits=["train"])
    build_s = time.perf_counter() - start
    steps = min(args.cache_steps, manifest["splits"]["train"] // batch)
    compile_emd(model)
    head = fc.head_model(model)
    compile_emd(head)
    e2e = build_dataset(cfg, True).repeat()
    cached = fc.build_cached_dataset(cfg, True, cache_dir=cache_dir).repeat()
    model.fit(e2e, steps_per_epoch=1, epochs=1, verbose=0)
    head.fit(cached, steps_per_epoch=1, epochs=1, verbose=0)
    t_e2e, t_cache = interleaved(
        [_timed(lambda: model.fit(e2e, steps_per_epoch=steps, epochs=1, verbose=0)),
         _timed(lambda: head.fit(cached, steps_per_epoch=steps, epochs=1, verbose=0))], args.rounds)
    out = {"steps_per_epoch": steps, "batch": batch, "image_size": size, "end_to_end_epoch_s": t_e2e,
           "cached_epoch_s": t_cache, "speedup": _median([a / b for a, b in zip(t_e2e, t_cache)]),
           "cache_build_s": build_s, "cache_build_epochs_equivalent": build_s / _median(t_e2e) * steps / max(1, cache["splits"]["train"] // batch),
           "cache_bytes": sum(cache["shard_bytes"].values())}
    _log(f"feature cache speed-up {out['speedup']:.1f}x")
    keras.backend.clear_session()
    return out


# ----------------------------------------------------------------------------- main


def _met(name, value):
    op, target = TARGETS[name]
    ok = {">=": value >= target, "<": value < target, "<=": value <= target}[op]
    return f"{op} {target:g}", "met" if ok else "MISSED"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small step counts (about 10 min on 2 cores)")
    parser.add_argument("--sections", default="pipeline,input_wait,head,utilisation,serving,cache")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    q = args.quick
    args.rounds = 2 if q else 4
    args.steps = 2 if q else 5
    args.vgg_size = 224
    args.pipeline_images = 400 if q else 800
    args.pipeline_sizes = "224" if q else "64,224"
    args.input_wait_configs = [("tiny", 64, 32)] + ([] if q else [("vgg16", 224, 8)])
    args.serving_backbone, args.serving_size = ("tiny", 64)
    args.serving_reps = 10 if q else 30
    args.cache_steps = 6 if q else 20
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]

    import tensorflow as tf

    work = tempfile.mkdtemp(prefix="tfaesthetic-runall-")
    t0 = time.perf_counter()
    records, manifest = build_records(work, 200 if q else 400)
    _log(f"demo records in {records}")
    result = {**results_io.run_facts(), "quick": q, "tensorflow": tf.__version__, "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg()}
    runners = {
        "pipeline": lambda: section_pipeline(args),
        "input_wait": lambda: section_input_wait(args, records, manifest),
        "head": lambda: section_head_overhead(args, records, manifest),
        "utilisation": lambda: section_utilisation(args, records, manifest),
        "serving": lambda: section_serving(args, records, manifest, work),
        "cache": lambda: section_feature_cache(args, records, manifest, work),
    }
    for name in sections:
        start = time.perf_counter()
        _log(f"section {name}")
        try:
            result[name] = runners[name]()
        except Exception as e:  # a failing section is reported, the others still run
            import traceback

            traceback.print_exc()
            result[name] = {"error": f"{type(e).__name__}: {e}"}
        result.setdefault("section_seconds", {})[name] = time.perf_counter() - start
    result["load_average_end"] = os.getloadavg()
    result["total_seconds"] = time.perf_counter() - t0

    rows = []
    def row(label, value, fmt, target=None):
        rows.append((label, fmt.format(value), *(_met(target, value) if target else ("", ""))))

    r = result
    if "ratio" in r.get("pipeline", {}):
        p = r["pipeline"]
        cached = "cache on" if p["default_config_caches"] else "cache off"
        row(f"pipeline vs naive ({p['image_size']} px, default config: {cached})", p["ratio"], "{:.2f}x", "pipeline_vs_naive")
        row(f"pipeline vs naive ({p['image_size']} px, cache off)", p["no_cache_ratio"], "{:.2f}x")
        row(f"pipeline vs naive ({p['image_size']} px, first epoch incl. construction)", p["first_epoch_ratio"], "{:.2f}x")
        rv, st = p["review_mode"], p["review_stall"]
        row("CFAN review mode / image mode examples/s", rv["review_over_image_examples_per_s"], "{:.2f}x")
        row("time to first batch, review / image mode (s)",
            f"{rv['review']['time_to_first_batch_s']:.2f} / {rv['image']['time_to_first_batch_s']:.2f}", "{}")
        row("one image with 125 reviews: max / median batch gap", st["max_over_median"], "{:.1f}x")
        row("pipeline memory growth (x4 data)", r["pipeline"]["memory_growth"], "{:.3f}x", "memory_growth")
    if "input_wait_fraction" in r.get("input_wait", {}):
        for k, v in r["input_wait"]["configs"].items():
            row(f"input-wait fraction ({k})", v["input_wait_fraction"], "{:.1%}", "input_wait_fraction")
    if "ratio" in r.get("head", {}):
        row("MRACNN step / VGG16+GAP+dense step (224 px, b8)", r["head"]["ratio"], "{:.3f}x", "mracnn_step_over_backbone_step")
        row("CFAN-3task step / CFN-1task step (224 px, b8)", r["head"]["cfan"]["ratio"], "{:.3f}x")
    if "fraction" in r.get("utilisation", {}):
        u = r["utilisation"]
        row(f"MRACNN forward GFLOP/s (b16, {u['forward_gflop']:.0f} GFLOP)", u["forward_gflops"], "{:.1f}")
        row("matmul GFLOP/s", u["matmul_gflops"], "{:.1f}")
        row("MRACNN forward / matmul GFLOP/s", u["fraction"], "{:.1%}", "mracnn_forward_fraction_of_matmul")
    if "b32" in r.get("serving", {}):
        for b in (1, 32):
            s = r["serving"][f"b{b}"]
            row(f"serving b{b}: raw SavedModel p50/p95 ms", f"{s['raw_saved_model_p50_ms']:.1f} / {s['raw_saved_model_p95_ms']:.1f}", "{}")
            row(f"serving b{b}: in-process p50/p95 ms", f"{s['in_process_p50_ms']:.1f} / {s['in_process_p95_ms']:.1f}", "{}")
            row(f"serving b{b}: raw / in-process p50", s["ratio_p50"], "{:.2f}x",
                "serving_raw_over_inprocess_b32_p50" if b == 32 else None)
    if "speedup" in r.get("cache", {}):
        row("feature-cache epoch speed-up (VGG16 224 px, b8)", r["cache"]["speedup"], "{:.1f}x", "feature_cache_speedup")
    for name in sections:
        if "error" in r.get(name, {}):
            rows.append((f"{name}: FAILED", r[name]["error"][:80], "", ""))
    result["table"] = [list(x) for x in rows]
    width = max(len(x[0]) for x in rows) if rows else 10
    print(f"\ntfaesthetic benchmarks ({'quick' if q else 'full'}), {os.cpu_count()} CPUs, "
          f"load {result['load_average_start'][0]:.1f} -> {result['load_average_end'][0]:.1f}, "
          f"{result['total_seconds'] / 60:.1f} min")
    for label, value, target, met in rows:
        print(f"  {label:<{width}}  {value:>16}  {target:>8}  {met}")
    results_io.write_results(args.out, f"{socket.gethostname()}-{datetime.date.today().isoformat()}", result)
    return result


if __name__ == "__main__":
    main()
