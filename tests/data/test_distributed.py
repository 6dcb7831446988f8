"""build_dataset under MirroredStrategy with two logical CPU devices (in a subprocess).

Logical devices must be configured before TensorFlow initialises its devices, which
the pytest process (and other tests in it, also under pytest-xdist) has already done;
so the strategy runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.data import helpers

SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfaesthetic.config import DataConfig
from tfaesthetic.data import build_dataset

records_dir = sys.argv[1]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {"replicas": strategy.num_replicas_in_sync}
for mode, feats in [("image", ("image", "tokens")), ("review", ("image", "image_index", "user_index", "review"))]:
    config = DataConfig(records_dir=records_dir, mode=mode, features=feats, image_size=32, max_len=8,
                        global_batch_size=8, shuffle_buffer=16, seed=0)
    # Built outside the scope with the global batch size, then distributed.
    dist = strategy.experimental_distribute_dataset(build_dataset(config, is_training=True))
    shapes = []
    for feats_, labels in dist:
        shapes.append({k: [list(t.shape) for t in strategy.experimental_local_results(v)] for k, v in {**feats_, **labels}.items()})

    @tf.function
    def step(batch):
        feats_, labels = batch
        return strategy.run(lambda f, l: tf.shape(f["image"])[0], args=(feats_, labels))

    sizes = [int(s) for s in strategy.experimental_local_results(step(next(iter(dist))))]
    # Per-replica pipelines via distribute_datasets_from_function.
    fn = strategy.distribute_datasets_from_function(
        lambda ctx: build_dataset(config, is_training=True, input_context=ctx))
    per = [[list(t.shape) for t in strategy.experimental_local_results(f["image"])] for f, _ in fn]
    out[mode] = {"batches": len(shapes), "first": shapes[0], "step_sizes": sizes, "fn_shapes": per[:1], "fn_batches": len(per)}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_mirrored_strategy_two_logical_cpus(tmp_path):
    records = helpers.make_records(40, split_of=lambda i: "train" if i < 32 else "val", comments_per_image=lambda i: 2)
    # Every comment rated, so 64 reviews in train.
    for r in records:
        for c in r.comments:
            c.rating = 1
    helpers.write(tmp_path, records, num_shards=2)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, cwd=root, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    assert result["replicas"] == 2
    image = result["image"]
    assert image["batches"] == 32 // 8
    assert image["first"]["image"] == [[4, 32, 32, 3], [4, 32, 32, 3]]  # global 8 split over 2 replicas
    assert image["first"]["tokens"] == [[4, 8], [4, 8]]
    assert image["first"]["distribution"] == [[4, 5], [4, 5]]
    assert image["step_sizes"] == [4, 4]
    assert image["fn_shapes"] == [[[4, 32, 32, 3], [4, 32, 32, 3]]]
    review = result["review"]
    assert review["batches"] == 64 // 8
    assert review["first"]["review"] == [[4, 8], [4, 8]]
    assert review["first"]["user_index"] == [[4], [4]]
    assert review["first"]["user_rating"] == [[4], [4]]
    assert review["step_sizes"] == [4, 4]
