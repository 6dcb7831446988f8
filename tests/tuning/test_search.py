"""End-to-end searches: MirroredStrategy, resume, chief + workers on localhost."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests._workers.tiny import tiny_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "_workers", "tune_worker.py")
MRACNN_METRICS = ("accuracy (%)", "SRCC", "PLCC", "MAE", "RMSE", "EMD")


def _spec(tmp_path, name, config, **search):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"config": config.to_dict(), "search": search}))
    return str(path)


def _start(spec, summary, env=None, log=None):
    env = dict(os.environ, **(env or {}))
    env.setdefault("PYTHONPATH", ROOT)
    out = open(log, "w") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, WORKER, spec, summary], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait(procs, timeout):
    deadline = time.time() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _tail(path):
    with open(path) as f:
        return f.read()[-3000:]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mirrored_search_writes_table_and_exports_best(demo_records, tmp_path):
    config = tiny_experiment("demo", demo_records, runtime__strategy="mirrored", runtime__num_logical_cpu_devices=2)
    directory = str(tmp_path / "trials")
    spec = _spec(tmp_path, "mirrored", config, tuner="random", max_trials=2, directory=directory, project_name="p")
    summary_path, log = str(tmp_path / "summary.json"), str(tmp_path / "log.txt")
    proc = _start(spec, summary_path, log=log)
    _wait([proc], 300)
    assert proc.returncode == 0, _tail(log)
    with open(summary_path) as f:
        summary = json.load(f)
    assert summary["num_replicas"] == 2
    assert [row["status"] for row in summary["trials"]] == ["COMPLETED"] * 2
    for row in summary["trials"]:
        assert set(row["hyperparameters"]) >= {"recurrences", "lstm_layers", "fusion", "learning_rate"}
        assert len(row["metrics"]) == 7 and all(v is not None for k, v in row["metrics"].items() if "rcc" not in k)
    best = min(summary["trials"], key=lambda r: r["score"])
    assert summary["best"]["trial_id"] == best["trial_id"]
    # The results table (Markdown + JSON) in the directory.
    with open(os.path.join(directory, "p", "results.md")) as f:
        table = f.read()
    assert all(f"val {m}" in table for m in MRACNN_METRICS)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "trial" not in line]
    assert len(rows) == 2 and sum("*" in r.split("|")[1] for r in rows) == 1
    with open(os.path.join(directory, "p", "results.json")) as f:
        assert json.load(f)["best"] == summary["best"]
    # The best trial, reloaded and exported through the export path of `train`.
    assert os.path.exists(os.path.join(summary["export"], "saved_model.pb"))
    assert os.path.exists(summary["best_model"])
    assert "srcc" in summary["best_test"]["overall"]


def _trial_status(project_dir, trial_id):
    path = os.path.join(project_dir, f"trial_{trial_id}", "trial.json")
    try:
        with open(path) as f:
            return json.load(f)["status"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_interrupted_search_resumes_without_rerunning_completed_trials(demo_records, tmp_path):
    from tfaesthetic.tuning import search

    # CFAN here (MRACNN in the other searches): objective AUC, maximised.
    config = tiny_experiment("demo_cfan", demo_records)
    directory = str(tmp_path / "trials")
    project_dir = os.path.join(directory, "p")
    kwargs = dict(tuner="random", objective="auc", directory=directory, project_name="p", export=False,
                  evaluate_best=False)
    # A search killed once its first trial has completed.
    spec = _spec(tmp_path, "killed", config, max_trials=2, **kwargs)
    log = str(tmp_path / "killed.log")
    proc = _start(spec, str(tmp_path / "killed.json"), log=log)
    try:
        deadline = time.time() + 240
        while _trial_status(project_dir, "0") != "COMPLETED":
            assert proc.poll() is None, _tail(log)
            assert time.time() < deadline, _tail(log)
            time.sleep(0.5)
    finally:
        proc.kill()
        proc.wait()
    checkpoint = os.path.join(project_dir, "trial_0", "checkpoint.weights.h5")
    stamp = os.path.getmtime(checkpoint)
    # The same search again: trial 0 is not run again.
    resumed = search.run_search(config, max_trials=2, **kwargs)
    assert "0" not in resumed["trials_run_here"]
    assert os.path.getmtime(checkpoint) == stamp
    assert [r["status"] for r in resumed["trials"]] == ["COMPLETED"] * 2
    assert resumed["objective"] == {"name": "val_user_rating_auc", "direction": "max"}
    assert set(resumed["trials"][1]["metrics"]) == {"user_rating_auc", "agnostic_rating_accuracy", "loss"}
    assert max(resumed["trials"], key=lambda r: r["score"])["trial_id"] == resumed["best"]["trial_id"]
    # A larger budget extends the finished search by the new trial only.
    extended = search.run_search(config, max_trials=3, **kwargs)
    assert extended["trials_run_here"] == ["2"] and extended["trials"][:2] == resumed["trials"]


@pytest.mark.slow
def test_chief_and_two_workers_on_localhost(demo_records, tmp_path):
    config = tiny_experiment("demo", demo_records)
    directory = str(tmp_path / "trials")
    spec = _spec(tmp_path, "dist", config, tuner="random", max_trials=3, directory=directory, project_name="p",
                 evaluate_best=False)
    port = str(_free_port())
    procs, logs = {}, {}
    for role in ("chief", "tuner0", "tuner1"):
        env = {"KERASTUNER_TUNER_ID": role, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port}
        logs[role] = str(tmp_path / f"{role}.log")
        procs[role] = _start(spec, str(tmp_path / f"{role}.json"), env=env, log=logs[role])
    _wait(list(procs.values()), 420)
    for role, proc in procs.items():
        assert proc.returncode == 0, f"{role}:\n{_tail(logs[role])}"
    summaries = {}
    for role in procs:
        with open(tmp_path / f"{role}.json") as f:
            summaries[role] = json.load(f)
    assert summaries["chief"]["role"] == "chief" and summaries["chief"]["trials_run_here"] == []
    ran = {role: summaries[role]["trials_run_here"] for role in ("tuner0", "tuner1")}
    assert all(ran.values()), ran  # both workers ran trials
    all_ran = sorted(ran["tuner0"] + ran["tuner1"])
    assert len(all_ran) == 3 and len(set(all_ran)) == 3
    # The chief's oracle holds every trial (its state files in the directory).
    with open(os.path.join(directory, "p", "oracle.json")) as f:
        oracle_state = json.load(f)
    assert sorted(oracle_state["end_order"]) == sorted(oracle_state["start_order"]) == all_ran
    assert oracle_state["ongoing_trials"] == {}
    trial_files = glob.glob(os.path.join(directory, "p", "trial_*", "trial.json"))
    states = {}
    for path in trial_files:
        with open(path) as f:
            trial = json.load(f)
        states[trial["trial_id"]] = trial["status"]
    assert states == {t: "COMPLETED" for t in all_ran}
    assert sorted(r["trial_id"] for r in summaries["chief"]["trials"]) == all_ran
    assert os.path.exists(os.path.join(directory, "p", "results.md"))
    assert os.path.exists(os.path.join(summaries["chief"]["export"], "saved_model.pb"))


def test_bad_space_fails_before_any_trial(demo_records, tmp_path):
    from tfaesthetic.tuning import search_space as ss
    from tfaesthetic.tuning import search

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "mracnn", "hyperparameters": {
        "lstm_layers": {"type": "int", "min": 3, "max": 1, "default": 1}}}))
    directory = tmp_path / "trials"
    with pytest.raises(ss.SearchSpaceError, match="lstm_layers.*bad range"):
        search.run_search(tiny_experiment("demo", demo_records), space=str(bad), directory=str(directory))
    cfan_space = ss.default_space_path("cfan")
    with pytest.raises(ss.SearchSpaceError, match="not for --model='mracnn'"):
        search.run_search(tiny_experiment("demo", demo_records), space=cfan_space, directory=str(directory))
    assert not directory.exists()
