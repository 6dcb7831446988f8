"""The package works when installed from a wheel (not only from this checkout).

`pip wheel .` must carry the package data (the default search spaces) and the records
builders; in a fresh
virtual environment holding only that wheel (its dependencies are borrowed from the
test environment's site-packages as a plain path, so this checkout's editable install
is not active), `python -m tfaesthetic.records.build_demo` and `python -m
tfaesthetic.tune` run from a directory outside the repository.
"""

import glob
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", ROOT, "-w", str(out)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (path,) = glob.glob(str(out / "tfaesthetic-*.whl"))
    return path


def test_wheel_contains_the_default_search_spaces_and_the_builders(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tfaesthetic/tuning/spaces/mracnn.json", "tfaesthetic/tuning/spaces/cfan.json"} <= names
    assert {f"tfaesthetic/records/build_{n}.py" for n in ("demo", "jsonl", "ava", "photonet")} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_tune_runs_from_an_installed_wheel(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # The dependencies (TensorFlow & co.) as a plain path entry: no .pth of the test
    # environment is processed, so its editable tfaesthetic stays out of sys.path.
    with open(os.path.join(site, "test_deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)  # a pure-Python wheel installs by unpacking into site-packages
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    where = subprocess.run(
        [python, "-c", "import tfaesthetic, tfaesthetic.tuning.search_space as s; print(tfaesthetic.__file__); print(s.TUNING_DIR)"],
        cwd=str(work), env=env, check=True, capture_output=True, text=True, timeout=120,
    ).stdout.split()
    assert where[0].startswith(site) and where[1].startswith(site), where
    built = subprocess.run(
        [python, "-m", "tfaesthetic.records.build_demo", f"--out_dir={work / 'demo'}", "--num_images=60",
         "--image_size=32", "--num_users=10", "--num_workers=1"],
        cwd=str(work), env=env, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert (work / "demo" / "manifest.json").exists()
    proc = subprocess.run(
        [python, "-m", "tfaesthetic.tune", "--demo_size=tiny", "--tuner=random", "--max_trials=1", "--epochs=1",
         f"--directory={work / 'trials'}", "--seed=0"],
        cwd=str(work), env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "trials").is_dir()
    assert glob.glob(str(work / "trials" / "*" / "results.md"))
