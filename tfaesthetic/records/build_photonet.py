"""Builds records from Photo.net (SPEC §2.3): python -m tfaesthetic.records.build_photonet (or python records/build_photonet.py) --scores ... --out_dir ...

The scores file is a CSV/TSV `id,c1..c7[,tags]` (vote counts for scores 1..7, tags
`|`-separated). Formats and the skip/keep rules: records/README.md.
"""

import sys

from absl import app
from absl import flags

from tfaesthetic.records import common

_COMMON = common.define_build_flags(flags, default_val_fraction=0.05, default_test_fraction=0.15)
_SCORES = flags.DEFINE_string("scores", None, "CSV/TSV of id,c1..c7[,tags] (required).")
_IMAGE_DIR = flags.DEFINE_string("image_dir", None, "Folder of <id>.jpg images; unset: text-only records.")
_VAL_LIST = flags.DEFINE_string("val_list", None, "File of val image ids (one a line), for a fixed partition.")
_TEST_LIST = flags.DEFINE_string("test_list", None, "File of test image ids (one a line), for a fixed partition.")


def main(argv):
    del argv
    from tfaesthetic import console

    console.setup_build_cli()  # quiet TensorFlow start-up, progress of long builds
    from tfaesthetic.records import photonet

    def build(rejections):
        if not _SCORES.value:
            raise ValueError("--scores is required")
        return photonet.build_photonet(
            _COMMON["out_dir"].value,
            _SCORES.value,
            image_dir=_IMAGE_DIR.value,
            comments=_COMMON["comments"].value,
            val_list=_VAL_LIST.value,
            test_list=_TEST_LIST.value,
            **common.build_kwargs_from_flags(_COMMON, rejections),
        )

    sys.exit(common.run_build(build, _COMMON["out_dir"].value))


if __name__ == "__main__":
    app.run(main)
