"""Experiment configs: JSON round trip, presets (paper recipes), overrides, validation."""

import json

import pytest

from tfaesthetic import config as config_lib
from tfaesthetic.config import ConfigError, ExperimentConfig, get_experiment, validate, with_overrides

MANIFEST = {
    "splits": {"train": 10, "val": 2, "test": 2},
    "score_scale": {"num_bins": 10, "values": list(range(1, 11)), "threshold": 5.0},
    "num_users": 4,
    "has_images": True,
    "has_votes": True,
}


@pytest.mark.parametrize("name", config_lib.list_experiments())
def test_every_preset_round_trips_through_json_and_validates(name, tmp_path):
    config = get_experiment(name)
    assert config.name == name
    text = config.to_json()
    assert ExperimentConfig.from_json(text) == config
    path = tmp_path / "config.json"
    config.save(str(path))
    assert ExperimentConfig.load(str(path)) == config
    # Tuples survive JSON as tuples (not lists), so equality above is exact.
    assert isinstance(ExperimentConfig.load(str(path)).data.features, tuple)
    validate(config, environ={})
    resolved = config_lib.resolve(config)
    # Against the tables written from the papers below, not against config's own tables.
    assert resolved.data.mode == EXPECTED_MODE[config.model.name]
    assert resolved.data.features == EXPECTED_INPUTS[(config.model.name, resolved.model.variant)]


#: What the pipeline yields per example for each model family: one example per image
#: (MRACNN, seed 003 §III) or one per (user, image) review (CFAN and the BPR baselines, seed 000 §3).
EXPECTED_MODE = {"mracnn": "image", "cfan": "review", "bpr": "review", "vbpr": "review"}

#: The inputs each variant reads, written from the papers (not read from `config`): seed 003
#: Tables I-III for MRACNN (image + comments; one stream alone; no attention), seed 000 Table 2 /
#: Fig. 6 for CFAN (the review-attention rows read the review, CFN-1task the image and ids,
#: CFN-pure the ids only) and §4.2 for BPR (ids) and VBPR (ids + image).
EXPECTED_INPUTS = {
    ("mracnn", "full"): ("image", "tokens"),
    ("mracnn", "text_only"): ("tokens",),
    ("mracnn", "vision_only"): ("image",),
    ("mracnn", "no_attention"): ("image", "tokens"),
    ("mracnn", "backbone_only"): ("image",),
    ("cfan", "cfan_3task"): ("image", "image_index", "user_index", "review"),
    ("cfan", "cfan_2task"): ("image", "image_index", "user_index", "review"),
    ("cfan", "cfan_1task"): ("image", "image_index", "user_index", "review"),
    ("cfan", "cfn_1task"): ("image", "image_index", "user_index"),
    ("cfan", "cfn_pure_2task"): ("image_index", "user_index"),
    ("bpr", "bpr"): ("image_index", "user_index"),
    ("vbpr", "vbpr"): ("image", "image_index", "user_index"),
}


def test_every_variant_resolves_to_the_inputs_of_its_paper():
    registered = {(name, v) for name in config_lib.families() for v in config_lib.get_family(name).variants}
    assert registered == set(EXPECTED_INPUTS)
    for (name, variant), keys in EXPECTED_INPUTS.items():
        preset = get_experiment(config_lib.family_preset(name, demo=True))
        resolved = config_lib.resolve(with_overrides(preset, {"model.variant": variant}))
        assert (resolved.data.mode, resolved.data.features) == (EXPECTED_MODE[name], keys), (name, variant)


def test_registry_has_the_paper_presets_and_demo():
    names = set(config_lib.list_experiments())
    assert {"demo", "demo_cfan", "mracnn_vgg16_ava", "mracnn_inception_ava", "cfan_3task_ava", "bpr_ava", "vbpr_ava"} <= names
    with pytest.raises(ConfigError, match="--experiment=nope"):
        get_experiment("nope")


def test_seed003_recipe_in_mracnn_vgg16_ava():
    c = get_experiment("mracnn_vgg16_ava")
    t = c.trainer
    # Seed 003 §IV-B: Adam(β1 .9, β2 .99), lr 1e-3 ÷10 every 10 epochs, batch 32, patience 5.
    assert (t.optimizer, t.learning_rate, t.beta_1, t.beta_2) == ("adam", 1e-3, 0.9, 0.99)
    assert (t.schedule, t.decay_rate, t.decay_every, t.early_stopping_patience) == ("step_epochs", 0.1, 10, 5)
    assert c.data.global_batch_size == 32 and c.data.max_len == 200
    assert (c.model.name, c.model.backbone, c.model.variant) == ("mracnn", "vgg16", "full")
    assert get_experiment("mracnn_inception_ava").model.backbone == "inception_v3"


def test_seed000_recipe_in_cfan_3task_ava():
    c = get_experiment("cfan_3task_ava")
    t = c.trainer
    # Seed 000 §4.1: SGD lr 0.005, decay 0.99 every 1000 steps; 320×320 inputs; λz .015, λβ 1.
    assert (t.optimizer, t.learning_rate, t.schedule, t.decay_rate, t.decay_every) == (
        "sgd", 0.005, "exponential_steps", 0.99, 1000,
    )
    assert c.data.image_size == 320
    assert c.model.params["lambda_z"] == 0.015 and c.model.params["lambda_beta"] == 1.0


def test_step_schedule_divides_by_ten_every_ten_epochs():
    from tfaesthetic.trainer import learning_rate_at_epoch

    t = get_experiment("mracnn_vgg16_ava").trainer
    rates = [learning_rate_at_epoch(t, e) for e in (0, 9, 10, 19, 20)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])


def test_overrides_and_unknown_keys():
    c = with_overrides(get_experiment("demo"), {"trainer.epochs": 3, "model.params.recurrences": 1, "data.features": ["tokens"]})
    assert c.trainer.epochs == 3 and c.model.params["recurrences"] == 1 and c.data.features == ("tokens",)
    assert get_experiment("demo").model.params["recurrences"] == 2  # the preset itself is untouched
    with pytest.raises(ConfigError, match="trainer.epochz"):
        with_overrides(get_experiment("demo"), {"trainer.epochz": 3})
    d = get_experiment("demo").to_dict()
    d["trainer"]["bogus"] = 1
    with pytest.raises(ConfigError, match="trainer.bogus"):
        ExperimentConfig.from_dict(d)


def _demo(**overrides):
    return with_overrides(get_experiment("demo"), overrides)


def test_text_only_with_feature_cache_names_both_flags():
    c = _demo(**{"model.variant": "text_only", "data.feature_cache_dir": "cache", "model.trainable_backbone": False})
    with pytest.raises(ConfigError) as e:
        validate(c, environ={})
    assert "--feature_cache=cache" in str(e.value) and "--variant=text_only" in str(e.value)


def test_feature_cache_needs_frozen_backbone():
    with pytest.raises(ConfigError, match="--feature_cache=cache.*--trainable_backbone"):
        validate(_demo(**{"data.feature_cache_dir": "cache"}), environ={})
    validate(_demo(**{"data.feature_cache_dir": "cache", "model.trainable_backbone": False}), environ={})


def test_vision_variant_with_text_only_records_names_the_flags():
    manifest = dict(MANIFEST, has_images=False)
    for variant in ("full", "vision_only", "no_attention"):
        with pytest.raises(ConfigError) as e:
            validate(_demo(**{"model.variant": variant, "data.records_dir": "recs"}), manifest=manifest, environ={})
        message = str(e.value)
        assert f"--variant={variant}" in message and "--records=recs" in message and "has_images: false" in message
    validate(_demo(**{"model.variant": "text_only"}), manifest=manifest, environ={})


def test_mracnn_on_records_without_votes_names_the_flags():
    manifest = dict(MANIFEST, has_votes=False, images_with_votes={"train": 0, "val": 0, "test": 0})
    with pytest.raises(ConfigError) as e:
        validate(_demo(**{"data.records_dir": "recs"}), manifest=manifest, environ={})
    message = str(e.value)
    assert "--model=mracnn" in message and "--records=recs" in message and "has_votes: false" in message
    # CFAN reads user ratings, not votes: allowed.
    validate(with_overrides(get_experiment("demo_cfan"), {"data.records_dir": "recs"}), manifest=manifest, environ={})


def test_multi_worker_without_tf_config():
    c = _demo(**{"runtime.strategy": "multi_worker"})
    with pytest.raises(ConfigError, match="--strategy=multi_worker.*TF_CONFIG"):
        validate(c, environ={})
    validate(c, environ={"TF_CONFIG": json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}})})


def test_unknown_variant_for_model_names_both_flags():
    with pytest.raises(ConfigError, match="--variant=cfan_3task is not a variant of --model=mracnn"):
        validate(_demo(**{"model.variant": "cfan_3task"}), environ={})
    with pytest.raises(ConfigError, match="--model=resnet"):
        validate(_demo(**{"model.name": "resnet"}), environ={})


def test_review_models_need_users_and_mracnn_needs_votes():
    cfan = get_experiment("demo_cfan")
    with pytest.raises(ConfigError, match="--model=cfan.*num_users"):
        validate(cfan, manifest=dict(MANIFEST, num_users=0), environ={})
    with pytest.raises(ConfigError, match="--model=mracnn.*score_scale"):
        validate(_demo(), manifest=dict(MANIFEST, score_scale=None), environ={})


def test_other_contradictions():
    cases = [
        ({"model.weights": "imagenet"}, "--weights=imagenet.*--backbone=tiny"),
        ({"model.weights": "/no/such/file.h5"}, "--weights=/no/such/file.h5"),
        ({"model.embeddings": "/no/such/glove.txt"}, "--embeddings=/no/such/glove.txt"),
        ({"trainer.epochs": 0}, "--epochs=0"),
        ({"data.global_batch_size": -2}, "--batch_size=-2"),
        ({"trainer.learning_rate": 0.0}, "--learning_rate=0.0"),
        ({"runtime.strategy": "tpu"}, "--strategy=tpu"),
        ({"trainer.optimizer": "lamb"}, "--optimizer=lamb"),
        ({"model.variant": "text_only", "model.weights": "imagenet", "model.backbone": "vgg16"}, "--weights=imagenet.*--variant=text_only"),
    ]
    for overrides, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            validate(_demo(**overrides), environ={})
