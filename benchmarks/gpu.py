"""GPU benchmark: training steps/s of the papers' configurations, precision and XLA (a report, not a test).

    python benchmarks/gpu.py            # on a GPU machine; about 5-7 min on one H100/H200-class GPU
    python benchmarks/gpu.py --tiny     # smoke configuration: tiny backbone, 64 px, CPU, seconds

Every model, optimizer and dataset is built through the product's code, as
`python -m tfaesthetic.train` builds them: a shipped preset
(`mracnn_vgg16_ava`, `cfan_3task_ava`; backbone weights None, nothing downloaded)
with `trainer.prepare_config`, `trainer.make_task(...).build_model()`,
`trainer.compile_model` and `trainer.build_datasets`, on synthetic AVA-size records
(640x480 JPEGs of ~150 kB, AVA-length comments and reviews) written by the records
writer into a temporary directory.

For each run (model, batch, precision, XLA):

- **steps/s and images/s** of `model.fit` on one batch held in memory (the device's
  compute alone): median over timed chunks after a warm-up that traces and compiles;
- **fraction of peak**: training FLOP/s over the device's peak dense FLOP/s for the
  run's math (table `PEAK_TFLOPS`, keyed by the device name: float32 runs use the
  TF32 tensor-core peak where TensorFlow enables TF32, i.e. Ampere and later). FLOPs
  are counted, not estimated: `tf.compat.v1.profiler` float_operation on the traced
  forward graph at the run's batch size; a training step is counted as 3x the
  forward pass (forward + gradients with respect to activations and weights);
- **input wait** (one run per model): 1 - t(steps fed one in-memory batch) /
  t(same steps fed by the real input pipeline, `trainer.build_datasets`: decode,
  resize, flip, batch, prefetch of the synthetic JPEGs).

Runs that do not fit in `--budget_s` are skipped and listed, so the script ends in
time (default 420 s of runs: under 8 minutes with the records and the start).
Writes `benchmarks/results/gpu-<host>-<date>.json` and prints one row per run.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import socket
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import results_io  # noqa: E402

#: Peak dense (no structured sparsity) TFLOP/s by device and math, from the vendors'
#: data sheets (SXM parts unless the name says PCIe). "tf32" is the float32 tensor-
#: core rate that TensorFlow uses for float32 matmuls and convolutions on Ampere and
#: later; None where the device has no such unit.
PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0},
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "L40S": {"fp32": 91.6, "tf32": 183.0, "bf16": 362.0, "fp16": 362.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
    "A10": {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0, "fp16": 125.0},
    "T4": {"fp32": 8.1, "tf32": None, "bf16": None, "fp16": 65.0},
    "V100": {"fp32": 15.7, "tf32": None, "bf16": None, "fp16": 125.0},
}

PRECISIONS = {"float32": "fp32", "mixed_float16": "fp16", "mixed_bfloat16": "bf16"}


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def device_info():
    """(name, is_gpu, compute capability) of the first GPU, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU", False, None
    details = tf.config.experimental.get_device_details(gpus[0])
    return details.get("device_name", "GPU"), True, details.get("compute_capability")


def peak_tflops(device_name: str, precision: str, compute_capability=None):
    """Peak dense TFLOP/s for a run's math on `device_name` (longest matching key), or None."""
    import tensorflow as tf

    key = next((k for k in sorted(PEAK_TFLOPS, key=len, reverse=True) if k.lower() in device_name.lower()), None)
    if key is None:
        return None, None
    math = PRECISIONS[precision]
    if math == "fp32":
        ampere = compute_capability is not None and tuple(compute_capability) >= (8, 0)
        if ampere and tf.config.experimental.tensor_float_32_execution_enabled():
            math = "tf32"
    return PEAK_TFLOPS[key].get(math), f"{key} {math}"


# ----------------------------------------------------------------------------- records

_WORDS = (
    "great composition colours light sharp focus subject background nice lovely dark bright contrast "
    "shadow detail mood exposure tones blurry noisy crop horizon sky portrait landscape texture "
    "beautiful simple strong weak soft harsh warm cold vivid dull perspective angle lines framing"
).split()


def synthetic_jpeg(rng, width, height, quality=90) -> bytes:
    """A photo-like JPEG: smooth gradients plus texture noise (~150 kB at 640x480, quality 90)."""
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    img = base + 60 * np.stack([np.sin(xx / rng.uniform(20, 90)), np.cos(yy / rng.uniform(20, 90)),
                                np.sin((xx + yy) / rng.uniform(30, 120))], -1)
    img += rng.normal(0, 14, size=img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_synthetic_records(out_dir, num_images, *, width=640, height=480, num_users=200, seed=0):
    """AVA-size records through the product's writer: `num_images` JPEGs, ~6 comments of ~20 words each."""
    from tfaesthetic import features
    from tfaesthetic.records.rejections import Rejections
    from tfaesthetic.records.writer import write_records

    rng = np.random.default_rng(seed)
    records = []
    for i in range(num_images):
        comments = []
        for _ in range(int(rng.integers(2, 11))):  # AVA: ~1.5 M comments over 255 k images
            words = " ".join(rng.choice(_WORDS, size=int(rng.integers(8, 32))))
            comments.append(features.Comment(text=words, user_index=int(rng.integers(0, num_users)),
                                             sentiment=int(rng.integers(0, 4)), rating=int(rng.integers(0, 2))))
        votes = rng.multinomial(int(rng.integers(80, 300)), np.full(10, 0.1)).tolist()
        split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
        records.append(features.ImageRecord(
            image_id=f"syn{i}", split=split, encoded=synthetic_jpeg(rng, width, height), image_format="jpeg",
            votes=votes, tags=[int(rng.integers(0, 4))], comments=comments,
        ))
    write_records(out_dir, records, scale=features.AVA_SCALE, users=[f"user{i}" for i in range(num_users)],
                  tags=["landscape", "portrait", "still life", "abstract"], source="synthetic-ava-size",
                  rejections=Rejections(), num_shards=4, validate_images=False)
    return out_dir, float(np.mean([len(r.encoded) for r in records]))


# ----------------------------------------------------------------------------- runs


def experiment(preset, records_dir, *, batch, image_size=None, tiny=False):
    """The shipped preset with the benchmark's records, batch and (tiny) sizes; no weights download."""
    from tfaesthetic import config as config_lib

    config = config_lib.get_experiment(preset)
    config.data.records_dir = records_dir
    config.data.global_batch_size = batch
    config.model.weights = None
    config.trainer.verbose = 0
    if image_size:
        config.data.image_size = image_size
    if tiny:
        config.model.backbone = "tiny"
        config.data.max_len = 32
        if config.model.name == "mracnn":
            config.model.params.update(recurrences=2, lstm_units=16, attention_units=16, embedding_dim=16,
                                       num_filters=8, mfb_k=2, mfb_o=16)
        else:
            config.model.params.update(factor_dim=8, hidden_units=[8], embedding_dim=8, gru_units=8)
    return config


def build(config, precision, jit):
    """(model, task, datasets) through the trainer, under the run's dtype policy."""
    import keras

    from tfaesthetic import trainer

    config.trainer.jit_compile = bool(jit)
    config.trainer.mixed_precision = precision == "mixed_float16"
    config, manifest = trainer.prepare_config(config)
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    task = trainer.make_task(config, manifest)
    model = task.build_model()
    trainer.compile_model(model, task, config)
    train, _ = trainer.build_datasets(config, task, model)
    return config, task, model, train


def forward_flops(model, batch_x):
    """FLOPs of one forward pass at the batch's size, counted on the traced graph (float_operation)."""
    import tensorflow as tf

    specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), batch_x)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph=graph, options=opts).total_float_ops)


def _fit_seconds(model, dataset, steps):
    start = time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    float(history.history["loss"][-1])  # the last step has finished
    return time.perf_counter() - start


def run_one(spec, records_dir, device, args, input_wait=False):
    """One (preset, batch, precision, XLA) run; returns its figures."""
    import keras
    import tensorflow as tf

    preset, batch, size, precision, jit = spec["preset"], spec["batch"], spec.get("image_size"), spec["precision"], spec["jit"]
    started = time.perf_counter()
    config = experiment(preset, records_dir, batch=batch, image_size=size, tiny=args.tiny)
    try:
        config, task, model, train = build(config, precision, jit)
        batch_data = next(iter(train))
        fixed = tf.data.Dataset.from_tensors(batch_data).repeat()
        _fit_seconds(model, fixed, args.warmup_steps)  # trace (+ XLA compile) and warm up
        compile_s = time.perf_counter() - started
        chunks = [_fit_seconds(model, fixed, args.steps) for _ in range(args.chunks)]
        step_s = float(np.median(chunks)) / args.steps
        x = batch_data[0]
        flops = forward_flops(model, x)
        name, _, cc = device
        peak, peak_key = peak_tflops(name, precision, cc)
        train_flops = 3 * flops
        out = {
            **spec, "image_size": config.data.image_size, "backbone": config.model.backbone,
            "steps_per_s": 1.0 / step_s, "images_per_s": batch / step_s, "step_ms": 1e3 * step_s,
            "forward_gflop_per_batch": flops / 1e9, "train_gflop_per_step": train_flops / 1e9,
            "achieved_tflops": train_flops / step_s / 1e12, "peak_tflops": peak, "peak_key": peak_key,
            "fraction_of_peak": (train_flops / step_s / 1e12 / peak) if peak else None,
            "build_and_compile_s": compile_s, "chunk_s": chunks, "steps_per_chunk": args.steps,
        }
        if input_wait:
            real = train.repeat()
            _fit_seconds(model, real, args.warmup_steps)
            steps = args.input_wait_steps
            t_real, t_mem = [], []
            for _ in range(2):
                t_real.append(_fit_seconds(model, real, steps))
                t_mem.append(_fit_seconds(model, fixed, steps))
            out["input_wait"] = {
                "steps": steps, "pipeline_s": t_real, "memory_s": t_mem,
                "fraction": float(np.median([max(0.0, 1 - m / r) for r, m in zip(t_real, t_mem)])),
                "pipeline_images_per_s": batch * steps / float(np.median(t_real)),
            }
        out["seconds"] = time.perf_counter() - started
        return out
    finally:
        keras.config.set_dtype_policy("float32")
        keras.backend.clear_session()


def plan(args, on_gpu):
    """The runs, most important first (the budget cuts from the end)."""
    def run(preset, batch, precision, jit, size=None, wait=False):
        return {"preset": preset, "batch": batch, "precision": precision, "jit": jit, "image_size": size,
                "measure_input_wait": wait}

    if args.tiny:
        return [
            run("mracnn_vgg16_ava", 4, "float32", False, 64, wait=True),
            run("cfan_3task_ava", 4, "float32", False, 64, wait=True),
            run("mracnn_vgg16_ava", 4, "mixed_bfloat16", False, 64),
            run("mracnn_vgg16_ava", 4, "float32", True, 64),
        ][: args.max_runs or None]
    mp = "mixed_bfloat16" if on_gpu else "float32"
    runs = [
        run("mracnn_vgg16_ava", 32, "float32", False),
        run("mracnn_vgg16_ava", 32, mp, True, wait=True),
        run("mracnn_vgg16_ava", 32, "mixed_float16", False),
        run("mracnn_vgg16_ava", 32, "mixed_bfloat16", False),
        run("mracnn_vgg16_ava", 32, "float32", True),
        run("cfan_3task_ava", 32, "float32", False),
        run("cfan_3task_ava", 32, mp, True, wait=True),
        run("mracnn_vgg16_ava", 64, "float32", False),
        run("mracnn_vgg16_ava", 64, mp, True),
        run("cfan_3task_ava", 32, "mixed_bfloat16", False),
        run("mracnn_vgg16_ava", 64, "mixed_float16", True),
        run("cfan_3task_ava", 32, "mixed_float16", True),
    ]
    return runs[: args.max_runs or None]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny backbone, 64 px, batch 4, a few steps (CPU smoke)")
    parser.add_argument("--num_images", type=int, default=None, help="synthetic images (default 640; 40 with --tiny)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed chunk (default 10; 2 with --tiny)")
    parser.add_argument("--chunks", type=int, default=None, help="timed chunks per run (default 3; 1 with --tiny)")
    parser.add_argument("--budget_s", type=float, default=420.0, help="skip the runs that would start after this")
    parser.add_argument("--max_runs", type=int, default=0, help="only the first N runs of the plan (0: all)")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = parser.parse_args(argv)
    args.num_images = args.num_images or (24 if args.tiny else 640)
    args.steps = args.steps or (2 if args.tiny else 10)
    args.chunks = args.chunks or (1 if args.tiny else 3)
    args.warmup_steps = 1 if args.tiny else 3
    args.input_wait_steps = 2 if args.tiny else 20

    import tensorflow as tf

    t0 = time.perf_counter()
    device = device_info()
    _log(f"device: {device[0]} (compute capability {device[2]}), TensorFlow {tf.__version__}")
    work = tempfile.mkdtemp(prefix="tfaesthetic-gpu-")
    size = (96, 72) if args.tiny else (640, 480)
    records_dir, mean_bytes = write_synthetic_records(os.path.join(work, "records"), args.num_images,
                                                      width=size[0], height=size[1])
    _log(f"{args.num_images} synthetic {size[0]}x{size[1]} JPEGs (mean {mean_bytes / 1e3:.0f} kB) in {records_dir}")
    results, skipped = [], []
    for spec in plan(args, device[1]):
        elapsed = time.perf_counter() - t0
        if results and elapsed > args.budget_s:
            skipped.append(spec)
            continue
        _log(f"run {spec}")
        try:
            out = run_one(spec, records_dir, device, args, input_wait=spec["measure_input_wait"])
        except Exception as e:  # noqa: BLE001  (a failed run is reported; the others still run)
            import traceback

            traceback.print_exc()
            out = {**spec, "error": f"{type(e).__name__}: {str(e)[:500]}"}
        results.append(out)
    result = {
        **results_io.run_facts(),
        "device": device[0], "compute_capability": device[2], "tensorflow": tf.__version__, "tiny": args.tiny,
        "records": {"num_images": args.num_images, "size": list(size), "mean_jpeg_bytes": mean_bytes},
        "flops": "forward FLOPs counted by tf.compat.v1.profiler float_operation on the traced graph at the run's "
                 "batch; a training step = 3 x forward",
        "runs": results, "skipped": skipped, "total_seconds": time.perf_counter() - t0,
    }

    header = f"{'run':<48} {'steps/s':>8} {'img/s':>8} {'GFLOP/step':>11} {'TFLOP/s':>8} {'peak':>16} {'of peak':>8} {'input wait':>10}"
    print(f"\ntfaesthetic GPU benchmark on {device[0]}, {result['total_seconds'] / 60:.1f} min")
    print(header)
    for r in results:
        label = f"{r['preset'].split('_ava')[0]} b{r['batch']} {r['precision']}{' +XLA' if r['jit'] else ''}"
        if "error" in r:
            print(f"{label:<48} FAILED {r['error'][:80]}")
            continue
        frac = f"{r['fraction_of_peak']:.1%}" if r["fraction_of_peak"] is not None else "n/a"
        wait = f"{r['input_wait']['fraction']:.1%}" if "input_wait" in r else ""
        print(f"{label + ' ' + str(r['image_size']) + 'px':<48} {r['steps_per_s']:>8.2f} {r['images_per_s']:>8.1f} "
              f"{r['train_gflop_per_step']:>11.3g} {r['achieved_tflops']:>8.3g} {str(r['peak_key']):>16} {frac:>8} {wait:>10}")
    for s in skipped:
        print(f"skipped (over --budget_s): {s}")
    results_io.write_results(
        args.out, f"gpu-{'tiny-' if args.tiny else ''}{socket.gethostname()}-{datetime.date.today().isoformat()}", result
    )
    return result


if __name__ == "__main__":
    main()
