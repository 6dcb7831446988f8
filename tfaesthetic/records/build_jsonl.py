"""Builds records from a generic JSONL file (SPEC §2.3): python -m tfaesthetic.records.build_jsonl (or python records/build_jsonl.py) --jsonl ... --out_dir ...

One image a line: {"image_id", "image_path" (optional, relative to the file), "votes"
(optional), "tags", "split" (optional, honoured), "comments": [{"text", "user"}]}.
Formats and the skip/keep rules: records/README.md.
"""

import sys

from absl import app
from absl import flags

from tfaesthetic.records import common

_COMMON = common.define_build_flags(flags, default_val_fraction=0.1, default_test_fraction=0.1)
_JSONL = flags.DEFINE_string("jsonl", None, "The JSONL file (required).")
_NUM_BINS = flags.DEFINE_integer("num_bins", None, "Number of score bins (values 1..n); default: from the first votes row.")
_SCORE_VALUES = flags.DEFINE_list("score_values", None, "Score value of each bin, e.g. 1,2,3,4,5.")
_THRESHOLD = flags.DEFINE_float(
    "threshold", None, "Good/bad threshold of the mean score; default 5 for 1..10, the middle of the range otherwise."
)


def main(argv):
    del argv
    from tfaesthetic import console

    console.setup_build_cli()  # quiet TensorFlow start-up, progress of long builds
    from tfaesthetic.records import jsonl

    def build(rejections):
        if not _JSONL.value:
            raise ValueError("--jsonl is required")
        try:
            score_values = [float(v) for v in _SCORE_VALUES.value] if _SCORE_VALUES.value else None
        except ValueError:
            raise ValueError(f"Expected --score_values as numbers. Received: {_SCORE_VALUES.value}") from None
        manifest = jsonl.build_jsonl(
            _COMMON["out_dir"].value,
            _JSONL.value,
            num_bins=_NUM_BINS.value,
            score_values=score_values,
            threshold=_THRESHOLD.value,
            **common.build_kwargs_from_flags(_COMMON, rejections),
        )
        print(f"score scale: {manifest['source_notes']['score_scale']}")
        return manifest

    sys.exit(common.run_build(build, _COMMON["out_dir"].value))


if __name__ == "__main__":
    app.run(main)
