"""benchmarks/gpu.py: the peak table lookup, and a tiny CPU run of the real script (smoke)."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("tfaesthetic_gpu_benchmark", os.path.join(ROOT, "benchmarks", "gpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_table_is_keyed_by_device_name_and_math(gpu, monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config.experimental, "tensor_float_32_execution_enabled", lambda: True)
    assert gpu.peak_tflops("NVIDIA H200", "mixed_bfloat16", (9, 0)) == (989.4, "H200 bf16")
    assert gpu.peak_tflops("NVIDIA H100 PCIe", "mixed_float16", (9, 0)) == (756.0, "H100 PCIe fp16")
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3", "float32", (9, 0)) == (494.7, "H100 tf32")  # TF32 on Hopper
    assert gpu.peak_tflops("NVIDIA A100-SXM4-80GB", "float32", (8, 0)) == (156.0, "A100 tf32")
    assert gpu.peak_tflops("NVIDIA L4", "mixed_bfloat16", (8, 9)) == (121.0, "L4 bf16")
    assert gpu.peak_tflops("Tesla T4", "float32", (7, 5)) == (8.1, "T4 fp32")  # no TF32 before Ampere
    assert gpu.peak_tflops("Tesla T4", "mixed_bfloat16", (7, 5)) == (None, "T4 bf16")
    assert gpu.peak_tflops("Tesla V100-SXM2-16GB", "mixed_float16", (7, 0)) == (125.0, "V100 fp16")
    assert gpu.peak_tflops("CPU", "float32") == (None, None)
    monkeypatch.setattr(tf.config.experimental, "tensor_float_32_execution_enabled", lambda: False)
    assert gpu.peak_tflops("NVIDIA A100-SXM4-80GB", "float32", (8, 0)) == (19.5, "A100 fp32")


@pytest.mark.slow  # two tiny training runs through the trainer's code
def test_tiny_run_through_the_presets_and_the_trainer(gpu, tmp_path):
    import keras

    result = gpu.main(["--tiny", "--max_runs", "2", "--out", str(tmp_path)])
    assert keras.config.dtype_policy().name == "float32"  # the script restores the global policy
    runs = result["runs"]
    assert [r["preset"] for r in runs] == ["mracnn_vgg16_ava", "cfan_3task_ava"]
    for r in runs:
        assert "error" not in r, r.get("error")
        assert r["backbone"] == "tiny" and r["image_size"] == 64 and r["batch"] == 4
        assert r["steps_per_s"] > 0 and r["images_per_s"] == pytest.approx(4 * r["steps_per_s"])
        assert r["forward_gflop_per_batch"] > 0 and r["train_gflop_per_step"] == pytest.approx(3 * r["forward_gflop_per_batch"])
        assert 0.0 <= r["input_wait"]["fraction"] <= 1.0
    (path,) = [p for p in os.listdir(tmp_path) if p.startswith("gpu-tiny-")]
    with open(tmp_path / path) as f:
        assert json.load(f)["runs"][0]["steps_per_s"] == runs[0]["steps_per_s"]
