"""`python -m tfaesthetic.train`: the no-flag run end to end (tiny demo), and flags that contradict each other."""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd, timeout=600, **env_overrides):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "tfaesthetic.train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_no_flags_builds_demo_trains_evaluates_and_exports(tmp_path):
    result = _run([], cwd=str(tmp_path), TFAESTHETIC_DEMO_SIZE="tiny")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    # The demo records were built in the working directory.
    manifest = json.loads((tmp_path / "demo_records_tiny" / "manifest.json").read_text())
    assert manifest["splits"]["test"] > 0 and manifest["has_images"]
    # One run directory with the resolved config, metrics, model, logs and export.
    runs = glob.glob(str(tmp_path / "runs" / "demo-*"))
    assert len(runs) == 1, runs
    run_dir = runs[0]
    config = json.loads(open(os.path.join(run_dir, "config.json")).read())
    assert config["model"]["name"] == "mracnn" and config["model"]["variant"] == "full"
    assert config["trainer"]["epochs"] == 2 and config["data"]["records_dir"] == "demo_records_tiny"
    metrics = json.loads(open(os.path.join(run_dir, "metrics.json")).read())
    assert metrics["test"]["overall"]["count"] == manifest["splits"]["test"]
    assert metrics["epochs_run"] == [0, 1]
    assert os.path.exists(os.path.join(metrics["export"], "saved_model.pb"))
    assert os.path.exists(os.path.join(run_dir, "model.keras"))
    assert glob.glob(os.path.join(run_dir, "logs", "**", "events.out.tfevents*"), recursive=True)
    # The printed summary: the metrics table and where everything went.
    assert "| overall" in out and "SRCC" in out
    for label in ("Run directory:", "TensorBoard:", "Export:", "Metrics:"):
        assert label in out, label
    assert metrics["export"] in out


def _fake_records(tmp_path, **changes):
    """A records directory whose manifest says something (no shards needed: it fails first)."""
    manifest = {
        "schema_version": 1,
        "splits": {"train": 8, "val": 2, "test": 2},
        "score_scale": {"num_bins": 10, "values": [float(v) for v in range(1, 11)], "threshold": 5.0},
        "num_users": 3,
        "num_images": 12,
        "num_train_images": 8,
        "num_tags": 2,
        "vocab_size": 10,
        "has_images": True,
    }
    manifest.update(changes)
    path = tmp_path / "records"
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps(manifest))
    return str(path)


CONTRADICTIONS = [
    (["--variant=text_only", "--feature_cache=cache", "--notrainable_backbone"], ["--variant=text_only", "--feature_cache=cache"]),
    (["--strategy=multi_worker"], ["--strategy=multi_worker", "TF_CONFIG"]),
    (["--model=cfan", "--variant=full"], ["--variant=full", "--model=cfan"]),
    (["--model=bpr", "--weights=imagenet", "--backbone=vgg16"], ["--weights=imagenet", "--model=bpr"]),
    (["--epochs=0"], ["--epochs=0"]),
    # Issue 10: an unknown family / variant / --param names the family and lists the valid ones.
    (["--model=nope"], ["--model=nope", "'cfan'", "'bpr'", "'vbpr'", "'mracnn'"]),
    (["--model=vbpr", "--variant=cfan_3task"], ["--variant=cfan_3task", "--model=vbpr", "['vbpr']"]),
    (["--model=bpr", "--param=attention_units=3"], ["--model=bpr", "--param=attention_units", "factor_dim"]),
    (["--model=cfan", "--param=fusion=mfb"], ["--model=cfan", "--param=fusion", "profile_weight"]),
    (["--model=cfan", "--experiment=demo"], ["--experiment=demo", "--model=cfan", "--experiment=demo_cfan"]),
]


@pytest.mark.parametrize("args,named", CONTRADICTIONS, ids=[" ".join(a) for a, _ in CONTRADICTIONS])
def test_contradictory_flags_fail_before_training(tmp_path, args, named):
    result = _run(args, cwd=str(tmp_path), timeout=120)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    for flag in named:
        assert flag in result.stderr, (flag, result.stderr[-2000:])
    # Nothing was built or trained.
    assert not (tmp_path / "demo_records").exists() and not (tmp_path / "runs").exists()


def test_image_model_on_records_without_images_fails_naming_the_flags(tmp_path):
    records = _fake_records(tmp_path, has_images=False)
    result = _run(["--records=" + records, "--variant=vision_only"], cwd=str(tmp_path), timeout=180)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "--variant=vision_only" in result.stderr and f"--records={records}" in result.stderr
    assert "has_images: false" in result.stderr
    assert not (tmp_path / "runs").exists()
    # An unknown model hyperparameter fails before training too, naming it.
    result = _run(["--records=" + records, "--variant=text_only", "--param=recurrencez=3"], cwd=str(tmp_path), timeout=180)
    assert result.returncode == 2 and "--param=recurrencez" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "runs").exists()


def test_review_model_on_records_without_users_or_reviews_names_records(tmp_path):
    for changes, expected in (({"num_users": 0}, "has no users"), ({"reviews": {"train": 0, "val": 0, "test": 0}}, "no rated reviews")):
        sub = tmp_path / expected.replace(" ", "_")
        sub.mkdir()
        records = _fake_records(sub, **changes)
        # One family per case: bpr/vbpr share the check (`ModelFamily.needs_users`).
        for model in (("cfan",) if "users" in expected else ("bpr",)):
            result = _run(["--model=" + model, "--records=" + records], cwd=str(sub), timeout=180)
            assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
            assert f"--model={model}" in result.stderr and f"--records={records}" in result.stderr, result.stderr[-2000:]
            assert expected in result.stderr, result.stderr[-2000:]
            assert not (sub / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cfan", "bpr", "vbpr"])
def test_model_family_trains_evaluates_and_exports_from_the_cli(demo_records, tmp_path, model):
    """`--model=X` alone picks X's demo preset on demo records: no MRACNN parameter leaks."""
    args = [f"--model={model}", f"--records={demo_records}", "--run_dir=run", "--epochs=1", "--steps_per_epoch=2",
            "--validation_steps=1", "--image_size=32", "--max_len=16", "--batch_size=16"]
    result = _run(args, cwd=str(tmp_path), timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["name"] == f"demo_{model}" and config["model"]["name"] == model
    from tfaesthetic import config as config_lib

    assert set(config["model"]["params"]) <= set(config_lib.model_param_names(model))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    test = metrics["test"]
    assert test["no_review"]["per_user_auc"] is not None and test["unknown_user"] is not None
    assert (test["with_review"] is not None) == (model == "cfan")
    assert os.path.exists(os.path.join(metrics["export"], "saved_model.pb"))
    assert "without review" in result.stdout and "unknown user" in result.stdout
    if model != "cfan":
        return
    # The export, evaluated through its serve_tensors signature, gives the same
    # figures per path (its no-review path is an all-padding review).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT)
    evaluated = subprocess.run(
        [sys.executable, "-m", "tfaesthetic.evaluate", f"--export={metrics['export']}", f"--records={demo_records}",
         "--output=eval.json"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=900,
    )
    assert evaluated.returncode == 0, evaluated.stdout[-4000:] + evaluated.stderr[-4000:]
    exported = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    for path in ("with_review", "no_review", "agnostic", "unknown_user"):
        assert exported[path]["per_user_auc"] == pytest.approx(test[path]["per_user_auc"], abs=1e-3), path
        assert exported[path]["auc"] == pytest.approx(test[path]["auc"], abs=1e-3), path
    assert "without review" in evaluated.stdout
