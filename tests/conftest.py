"""Shared fixtures: quiet TensorFlow, a fixed seed, tiny demo records built once per worker."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

# Sizes of the tiny demo records the tests share (small enough for 2 CPU cores).
TINY_DEMO = dict(num_images=240, image_size=48, num_users=24, seed=0)


@pytest.fixture
def seed():
    """Seeds Python, NumPy and TensorFlow; returns the seed."""
    import keras

    keras.utils.set_random_seed(1234)
    return 1234


@pytest.fixture(scope="session")
def demo_records(tmp_path_factory):
    """Path of tiny demo records (built once per test worker)."""
    from tfaesthetic.records import demo

    out_dir = tmp_path_factory.mktemp("demo_records")
    demo.build_demo(str(out_dir), **TINY_DEMO)
    return str(out_dir)
