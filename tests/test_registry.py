"""The model-family registry (issue 10): one table ties each family's variants to what
its model takes, what the pipeline yields and what the export signature accepts; bad
families, variants and `--param` names fail naming the family and the valid values."""

import pytest

from tfaesthetic import config as config_lib


def _tiny_config(family, variant, records_dir):
    config = config_lib.get_experiment(family.demo_preset)
    params = dict(config.model.params)
    if family.name == "mracnn":
        params.update(lstm_units=8, attention_units=8, embedding_dim=8, num_filters=4, mfb_o=8)
    else:
        params.update(factor_dim=8)
        if family.name == "cfan":
            params.update(hidden_units=[8], embedding_dim=8, gru_units=8)
        if family.name == "vbpr":
            params.update(visual_dim=8)
    return config_lib.with_overrides(
        config,
        {
            "model.variant": variant,
            "model.params": params,
            "data.records_dir": records_dir,
            "data.image_size": 32,
            "data.max_len": 16,
            "data.global_batch_size": 4,
        },
    )


def test_every_family_and_variant_builds_and_its_inputs_match_pipeline_and_export(demo_records):
    from tfaesthetic import data, trainer
    from tfaesthetic.serving.export import ServingFunctions

    assert set(config_lib.families()) == {"mracnn", "cfan", "bpr", "vbpr"}
    for name in config_lib.families():
        family = config_lib.get_family(name)
        # The family's presets exist and belong to the family (no params of another one).
        for preset in (family.preset, family.demo_preset):
            assert config_lib.get_experiment(preset).model.name == name, preset
        assert config_lib.get_experiment(family.demo_preset).model.params.keys() <= set(
            config_lib.model_param_names(name)
        ), name
        for variant, keys in family.variants.items():
            config, manifest = trainer.prepare_config(_tiny_config(family, variant, demo_records))
            assert config.data.mode == family.mode and config.data.features == keys
            task = trainer.make_task(config, manifest)
            assert isinstance(task, family.load_task())
            model = task.build_model()
            assert isinstance(model, family.load_model_class()), (name, variant)
            model_keys = set(trainer.input_keys(model))
            assert model_keys == set(keys), (name, variant, model_keys)
            features, _ = next(iter(data.build_dataset(config.data, False, split="val")))
            assert set(features) == set(keys), (name, variant)
            signature = {spec.name for spec in ServingFunctions(model, demo_records).tensor_signature}
            assert signature == set(keys), (name, variant, signature)


def test_unknown_family_variant_and_param_name_the_family_and_list_valid_values():
    config = config_lib.get_experiment("demo_cfan")
    with pytest.raises(config_lib.ConfigError, match=r"--model=nope.*") as e:
        config_lib.validate(config_lib.with_overrides(config, {"model.name": "nope"}))
    assert "'cfan'" in str(e.value) and "'vbpr'" in str(e.value)
    with pytest.raises(config_lib.ConfigError, match=r"--variant=full is not a variant of --model=cfan") as e:
        config_lib.validate(config_lib.with_overrides(config, {"model.variant": "full"}))
    assert "cfn_pure_2task" in str(e.value)
    with pytest.raises(config_lib.ConfigError, match=r"--model=cfan: --param=recurrences\. Known: .*factor_dim"):
        config_lib.check_model_params(config_lib.with_overrides(config, {"model.params.recurrences": 2}))


def test_family_presets_are_chosen_by_records_kind():
    for name in config_lib.families():
        family = config_lib.get_family(name)
        assert config_lib.family_preset(name, demo=True) == family.demo_preset
        assert config_lib.family_preset(name, demo=False) == family.preset


def test_warm_protocol_picks_the_familys_warm_demo_preset():
    """--model=cfan --protocol=warm on the demo records starts from demo_cfan_warm; the others keep theirs."""
    assert config_lib.family_preset("cfan", demo=True, protocol="warm") == "demo_cfan_warm"
    assert config_lib.family_preset("cfan", demo=True, protocol="cold") == "demo_cfan"
    assert config_lib.family_preset("cfan", demo=False, protocol="warm") == "cfan_3task_ava"
    assert config_lib.family_preset("vbpr", demo=True, protocol="warm") == "demo_vbpr"
    warm, cold = config_lib.get_experiment("demo_cfan_warm"), config_lib.get_experiment("demo_cfan")
    assert warm.data.protocol == "warm" and cold.data.protocol == "cold"
    changed = {k for k in warm.model.params if warm.model.params[k] != cold.model.params.get(k)}
    assert changed == {
        "index_dropout", "visual_taste", "agnostic_target", "agnostic_image_bias", "residual_scale", "dropout"
    }, changed
    assert warm.model.params["index_dropout"] < cold.model.params["index_dropout"]


def test_warm_protocol_only_for_review_families():
    with pytest.raises(config_lib.ConfigError, match=r"--protocol=warm .*--model=mracnn"):
        config_lib.validate(config_lib.with_overrides(config_lib.get_experiment("demo"), {"data.protocol": "warm"}))
    with pytest.raises(config_lib.ConfigError, match=r"--protocol=lukewarm"):
        config_lib.validate(config_lib.with_overrides(config_lib.get_experiment("demo_cfan"), {"data.protocol": "lukewarm"}))
