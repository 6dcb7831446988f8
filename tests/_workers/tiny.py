"""Tiny experiment configs for the trainer tests (2 CPU cores: seconds per epoch)."""

from tfaesthetic import config as config_lib

# Smaller than the demo presets: fast to build and to trace.
TINY_MRACNN = dict(
    recurrences=2, lstm_units=8, attention_units=8, embedding_dim=8, num_filters=4, mfb_k=2, mfb_o=8
)
TINY_CFAN = dict(factor_dim=8, hidden_units=[8], embedding_dim=8, gru_units=8)


def tiny_experiment(name: str, records_dir: str, **overrides) -> config_lib.ExperimentConfig:
    """`demo` (MRACNN) or `demo_cfan` shrunk to a few steps on tiny records.

    Args:
        name: "demo" or "demo_cfan".
        records_dir: the records (e.g. the `demo_records` fixture).
        **overrides: dotted config paths with "." written as "__", e.g.
            `trainer__epochs=3`.
    """
    config = config_lib.get_experiment(name)
    params = TINY_MRACNN if config.model.name == "mracnn" else TINY_CFAN
    base = {
        "data.records_dir": records_dir,
        "data.image_size": 32,
        "data.max_len": 32,
        "data.global_batch_size": 16,
        "data.shuffle_buffer": 256,
        "model.params": dict(params),
        "trainer.epochs": 1,
        "trainer.steps_per_epoch": 2,
        "trainer.validation_steps": 1,
        "trainer.verbose": 2,
    }
    base.update({k.replace("__", "."): v for k, v in overrides.items()})
    return config_lib.with_overrides(config, base)
