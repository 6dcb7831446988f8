"""`python -m tfaesthetic.train`: the no-flag run end to end (tiny demo), and flags that contradict each other."""

import glob
import json
import os
import re
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


#: Lines a normal run must not print (issue 15): TensorFlow's start-up banner, INFO lines
#: of its saving code, and the two Keras warnings whose causes the trainer fixes.
NOISE = (
    "All log messages before absl::InitializeLog",
    "Could not find cuda drivers",
    "cuInit",
    "cpu_feature_guard",
    "This TensorFlow binary is optimized",
    "oneDNN custom operations",
    "signature_serialization.py",
    "unsupported characters which will be renamed",
    "Sharding callback duration",
    "Writing fingerprint",
    "Assets written to",
    "shuffle=True` was passed",
    "Your input ran out of data",
    "Traceback",
)


@pytest.fixture(scope="module")
def no_flag_run(tmp_path_factory):
    """The no-flag CLI on the tiny demo, with a second training started into its run dir meanwhile.

    The environment has no TF_CPP_MIN_LOG_LEVEL (CI exports one; a user's shell does not).
    """
    import time

    tmp_path = tmp_path_factory.mktemp("no_flag_run")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=ROOT, TFAESTHETIC_DEMO_SIZE="tiny")
    for key in ("TF_CONFIG", "TF_CPP_MIN_LOG_LEVEL", "TFAESTHETIC_VERBOSE"):
        env.pop(key, None)
    first = subprocess.Popen(
        [sys.executable, "-m", "tfaesthetic.train"], cwd=str(tmp_path), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Once the first run holds its run directory, a second training into it must fail at once.
    lock, deadline = None, time.time() + 400
    while time.time() < deadline and first.poll() is None:
        found = glob.glob(str(tmp_path / "runs" / "demo-*" / ".lock"))
        if found and open(found[0]).read().strip():
            lock = found[0]
            break
        time.sleep(0.2)
    second = None
    if lock is not None:
        second = subprocess.run(
            [sys.executable, "-m", "tfaesthetic.train", f"--run_dir={os.path.dirname(lock)}"], cwd=str(tmp_path),
            env=env, capture_output=True, text=True, timeout=300,
        )
    out, err = first.communicate(timeout=600)
    return dict(tmp_path=tmp_path, returncode=first.returncode, out=out, err=err, pid=first.pid, second=second)


@pytest.mark.slow
def test_no_flags_builds_demo_trains_evaluates_and_exports(no_flag_run):
    tmp_path, out = no_flag_run["tmp_path"], no_flag_run["out"]
    assert no_flag_run["returncode"] == 0, out[-4000:] + no_flag_run["err"][-4000:]
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
    assert "loss" in metrics["history"] and len(metrics["history"]["loss"]) == 2  # real training steps
    assert os.path.exists(os.path.join(metrics["export"], "saved_model.pb"))
    assert os.path.exists(os.path.join(run_dir, "model.keras"))
    assert glob.glob(os.path.join(run_dir, "logs", "**", "events.out.tfevents*"), recursive=True)
    # The printed summary: the metrics table and where everything went.
    assert "| overall" in out and "SRCC" in out
    for label in ("Run directory:", "TensorBoard:", "Export:", "Metrics:", "Report:"):
        assert label in out, label
    assert metrics["export"] in out


@pytest.mark.slow
def test_no_flag_output_holds_no_noise(no_flag_run):
    text = no_flag_run["out"] + no_flag_run["err"]
    assert no_flag_run["returncode"] == 0, text[-4000:]
    for noise in NOISE:
        assert noise not in text, (noise, text[-6000:])
    # What is left: our lines and Keras' per-epoch lines.
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "val_loss" in text


@pytest.mark.slow
def test_second_training_into_a_held_run_dir_fails_at_once(no_flag_run):
    import socket

    second = no_flag_run["second"]
    assert second is not None, "the first run never took its lock"
    assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert f"pid {no_flag_run['pid']} on host {socket.gethostname()}" in errors[0], errors[0]
    assert "Epoch 1/" not in second.stdout  # it trained nothing
    # The first run was not disturbed: its state and metrics agree.
    run_dir = glob.glob(str(no_flag_run["tmp_path"] / "runs" / "demo-*"))[0]
    state = json.loads(open(os.path.join(run_dir, "checkpoints", "state.json")).read())
    metrics = json.loads(open(os.path.join(run_dir, "metrics.json")).read())
    assert state["epoch"] == metrics["epochs"] == 2 and state["completed"]
    assert [d for d in os.listdir(os.path.join(run_dir, "export", "mracnn")) if not d.endswith(".config")] == ["1"]


@pytest.mark.slow
def test_run_report_files_open_with_expected_sizes(no_flag_run):
    from PIL import Image

    run_dir = glob.glob(str(no_flag_run["tmp_path"] / "runs" / "demo-*"))[0]
    config = json.loads(open(os.path.join(run_dir, "config.json")).read())
    report = open(os.path.join(run_dir, "report.md"), encoding="utf-8").read()
    for heading in ("## Configuration", "## Metrics", "### overall", "### per_tag", "## Training curves", "## Gallery"):
        assert heading in report, heading
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    pictures = sorted(glob.glob(os.path.join(run_dir, "report_files", "*.png")))
    assert sorted(os.path.join(run_dir, p) for p in linked) == pictures
    T = config["model"]["params"]["recurrences"]
    sizes = {os.path.basename(p): Image.open(p).size for p in pictures}
    assert sizes.pop("curves.png") == (1200, 360)
    attention = [n for n in sizes if n.endswith("-attention.png")]
    distribution = [n for n in sizes if n.endswith("-distribution.png")]
    assert len(attention) == len(distribution) == 4, sizes
    assert all(sizes[n] == ((T + 1) * 160, 160) for n in attention), sizes
    assert all(sizes[n] == (480, 320) for n in distribution), sizes
    # The HTML page is self-contained: every picture embedded, no file links.
    page = open(os.path.join(run_dir, "report.html"), encoding="utf-8").read()
    assert page.count('src="data:image/png;base64,') == len(pictures) and "report_files/" not in page
    # TensorBoard got the validation gallery each epoch.
    import tensorflow as tf

    events = glob.glob(os.path.join(run_dir, "logs", "images", "events.out.tfevents*"))
    assert events
    tags = {}
    for raw in tf.data.TFRecordDataset(events):
        event = tf.compat.v1.Event.FromString(raw.numpy())
        for value in event.summary.value:
            tags.setdefault(value.tag, set()).add(event.step)
    assert tags.get("attention") == {1, 2} and tags.get("distribution") == {1, 2}, tags


@pytest.mark.slow
def test_export_version_taken_meanwhile_goes_to_the_next(no_flag_run, monkeypatch):
    """Another exporter takes our version while we write: we land in the next one, no OSError."""
    import keras

    import tfaesthetic.models  # noqa: F401
    from tfaesthetic.serving import export

    tmp_path = no_flag_run["tmp_path"]
    run_dir = glob.glob(str(tmp_path / "runs" / "demo-*"))[0]
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    model_dir = os.path.join(run_dir, "export", "mracnn")
    rename = os.rename

    def another_exporter_renames_version_2_first(src, dst):
        if not os.path.exists(os.path.join(model_dir, "2")):
            os.makedirs(os.path.join(model_dir, "2"))
            open(os.path.join(model_dir, "2", "saved_model.pb"), "wb").close()  # the competitor's, complete
        return rename(src, dst)

    monkeypatch.setattr(os, "rename", another_exporter_renames_version_2_first)
    path = export.export_model(model, str(tmp_path / "demo_records_tiny"), os.path.dirname(model_dir), model_name="mracnn")
    assert path == os.path.join(model_dir, "3")
    assert json.loads(open(os.path.join(path, export.SIDECAR)).read())["version"] == 3
    assert os.listdir(os.path.join(model_dir, "2")) == ["saved_model.pb"]  # the other export is untouched
    assert not [d for d in os.listdir(model_dir) if d.startswith(".tmp")]


@pytest.mark.slow
def test_corrupt_or_truncated_shard_is_one_line_not_a_traceback(no_flag_run, tmp_path):
    """Issue 12 case 8: a flipped byte (DataLossError) and a truncated shard (ShardError) in the CLI."""
    import shutil

    source = no_flag_run["tmp_path"] / "demo_records_tiny"
    flags = ["--epochs=1", "--noexport", "--noreport", "--notb_images"]
    for case in ("flipped", "truncated"):
        records = tmp_path / case
        shutil.copytree(source, records)
        shard = sorted(records.glob("train-*.tfrecord"))[0]
        data = bytearray(shard.read_bytes())
        if case == "flipped":
            data[len(data) // 2] ^= 0xFF  # same size: only the record's CRC tells
        else:
            data = data[: len(data) - 100]
        shard.write_bytes(bytes(data))
        result = _run([f"--records={records}", f"--run_dir={tmp_path / ('run_' + case)}", *flags], cwd=str(tmp_path),
                      timeout=300)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert result.returncode == 1 and len(errors) == 1, (case, result.stderr[-3000:])
        assert "Traceback" not in result.stderr, (case, result.stderr[-3000:])
        if case == "truncated":
            assert shard.name in errors[0], errors[0]
        else:
            assert "orrupt" in errors[0], errors[0]


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


#: Smaller than the demo presets, for the family runs (2 CPU cores).
TINY_PARAMS = {
    "cfan": ["--param=factor_dim=8", "--param=hidden_units=[8]", "--param=embedding_dim=8", "--param=gru_units=8"],
    "bpr": ["--param=factor_dim=8"],
    "vbpr": ["--param=factor_dim=8", "--param=visual_dim=8"],
}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cfan", "bpr", "vbpr"])
def test_model_family_trains_evaluates_and_exports_from_the_cli(demo_records, tmp_path, model):
    """`--model=X` alone picks X's demo preset on demo records: no MRACNN parameter leaks."""
    args = [f"--model={model}", f"--records={demo_records}", "--run_dir=run", "--epochs=1", "--steps_per_epoch=2",
            "--validation_steps=1", "--image_size=32", "--max_len=16", "--batch_size=16",
            # Tiny model sizes (it checks that the family runs, not that it learns);
            # the run report and TensorBoard images are covered by the no-flag run above.
            "--noreport", "--notb_images", *TINY_PARAMS.get(model, ())]
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
