"""`python -m tfaesthetic.predict`: image files (+ comments, user) -> scores, pictures.

Usage:

    python -m tfaesthetic.predict --export_dir export/mracnn photo1.jpg photo2.png \\
        --comments "lovely light, sharp" --comments "" --out_dir predictions
    python -m tfaesthetic.predict --run_dir runs/cfan photo.jpg --user alice
    python -m tfaesthetic.predict --model runs/x/model.keras --records records/demo photo.jpg

The model comes from an export (`--export_dir`: a version directory or a model
directory, the highest version is used; only TensorFlow is needed to run it), a
`.keras` file (`--model`, with `--records` for the vocabulary, id maps and score
scale) or a training run directory (`--run_dir`: its `.keras` model and the records
named in its `config.json`). Both kinds answer through the same serving code
(`tfaesthetic.serving.export.ServingFunctions`), so they agree. The library behind
the CLI is `tfaesthetic.serving.predictor` (`load_predictor`, `predict`).

`--comments` and `--image_id` are given once (used for every image) or once per
image; `--user` is one user id for all images (CFAN; unknown or absent -> the
user-agnostic fallback). Writes into `--out_dir`:

- `predictions.json`: per image the mean score, distribution and good/bad label
  (MRACNN), or the personalised `user_rating`, `agnostic_rating` and good/bad label
  (CFAN), plus the paths of its pictures; an image that cannot be read or decoded
  gets an `error` entry instead (the run goes on; the exit status is 1);
- `<i>_<name>_attention.png`: the image and each attention map over it, side by side
  (`panel_size` px squares; MRACNN's T glimpse maps, CFAN's user map);
- `<i>_<name>_distribution.png`: a bar plot of the predicted score distribution
  (480 x 320 px; models that predict a distribution).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

# TensorFlow-free (TensorFlow is imported when a model is loaded, after
# `console.quiet_startup()`).
from tfaesthetic import console
from tfaesthetic.serving import predictor as predictor_lib
from tfaesthetic.serving.predictor import PANEL_SIZE_RANGE


def define_flags(flag_values=flags.FLAGS) -> None:
    """Defines the CLI flags on `flag_values`.

    Called only when the module runs as a program (and by tests on their own
    `FlagValues`): `tfaesthetic.train` defines flags with the same names
    (`--model`, `--records`, `--run_dir`, `--export_dir`), and absl refuses a second
    definition in one process, so importing this module defines nothing.
    """
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("export_dir", None, "SavedModel export (version or model directory).", **fv)
    flags.DEFINE_string("model", None, "A .keras model file (needs --records).", **fv)
    flags.DEFINE_string("run_dir", None, "A training run directory (model.keras + config.json).", **fv)
    flags.DEFINE_string("records", None, "Records directory of the model (vocab.txt, users.tsv, manifest).", **fv)
    flags.DEFINE_multi_string("comments", [], "Comments of an image (all in one string); once, or once per image.", **fv)
    flags.DEFINE_string("user", "", "User id (users.tsv) for the personalised rating (CFAN).", **fv)
    flags.DEFINE_multi_string("image_id", [], "Image id (images.tsv) for CFAN; default: the file name stem.", **fv)
    flags.DEFINE_string("out_dir", "predictions", "Where predictions.json and the PNGs go.", **fv)
    flags.DEFINE_integer(
        "panel_size", 224, "Side in pixels of each attention overlay panel.", lower_bound=PANEL_SIZE_RANGE[0],
        upper_bound=PANEL_SIZE_RANGE[1], **fv,
    )


def run(argv, flag_values=flags.FLAGS) -> int:
    """Runs the CLI on parsed flags; `argv[1:]` are the image files. Returns the exit status."""
    fv = flag_values
    if len(argv) < 2:
        raise app.UsageError("Expected image files after the flags. Received: none")

    # A bad flag or image path: absl's usage line; other user errors: one `Error:` line, status 1.
    return console.run_cli(lambda: _predict_and_print(argv, fv), usage_errors=(ValueError, FileNotFoundError))


def _predict_and_print(argv, fv) -> int:
    report = _predict_from_flags(argv, fv)
    for entry in report["predictions"]:
        if "error" in entry:
            print(f"{entry['image']}: ERROR {entry['error']}")
            continue
        parts = []
        if "mean_score" in entry:
            parts.append(f"mean {entry['mean_score']:.3f}")
        if "user_rating" in entry:
            parts.append(f"user {entry['user_rating']:.3f}{'' if entry.get('known_user', True) else ' (unknown user: agnostic)'}")
        if "agnostic_rating" in entry:
            parts.append(f"agnostic {entry['agnostic_rating']:.3f}")
        if "label" in entry:
            parts.append(entry["label"])
        print(f"{entry['image']}: " + ", ".join(parts))
    print(f"Wrote {os.path.join(fv.out_dir, 'predictions.json')}")
    return 1 if any("error" in e for e in report["predictions"]) else 0


def _predict_from_flags(argv, fv) -> dict:
    return predictor_lib.predict(
        argv[1:],
        out_dir=fv.out_dir,
        comments=fv.comments,
        user=fv.user,
        image_ids=fv.image_id,
        export_dir=fv.export_dir,
        model=fv.model,
        run_dir=fv.run_dir,
        records_dir=fv.records,
        panel_size=fv.panel_size,
        show_progress=True,
    )


def main(argv):
    console.quiet_startup()  # before TensorFlow is imported
    return run(argv)


if __name__ == "__main__":
    define_flags()
    app.run(main)
