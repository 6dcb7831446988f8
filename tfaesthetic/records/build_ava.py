"""Builds records from AVA (SPEC §2.3): python -m tfaesthetic.records.build_ava (or python records/build_ava.py) --ava_dir ... --out_dir ...

Paper protocols: MRACNN (seed 003) `--drop_no_comments --official_test_list=generic_test.jpgl`;
CFAN (seed 000) `--drop_no_comments --major_tags_min_images=3000 --split=90/10`.
Formats and the skip/keep rules: records/README.md.
"""

import sys

from absl import app
from absl import flags

from tfaesthetic.records import common

_COMMON = common.define_build_flags(flags)
_AVA_DIR = flags.DEFINE_string("ava_dir", None, "Folder with AVA.txt, tags.txt, challenges.txt, aesthetics_image_lists/.")
_IMAGE_DIR = flags.DEFINE_string("image_dir", None, "Folder of <id>.jpg images; unset: text-only records.")
_MAJOR_TAGS = flags.DEFINE_integer(
    "major_tags_min_images", 0, "Keep only tags with at least this many images (paper: 3000); 0 keeps all tags."
)
_OFFICIAL_TEST_LIST = flags.DEFINE_string(
    "official_test_list", None, "Test split from an image list: a path or a name in aesthetics_image_lists/."
)


def main(argv):
    del argv
    from tfaesthetic import console

    console.setup_build_cli()  # quiet TensorFlow start-up, progress of long builds
    from tfaesthetic.records import ava

    def build(rejections):
        if not _AVA_DIR.value:
            raise ValueError("--ava_dir is required")
        return ava.build_ava(
            _COMMON["out_dir"].value,
            _AVA_DIR.value,
            image_dir=_IMAGE_DIR.value,
            comments=_COMMON["comments"].value,
            major_tags_min_images=_MAJOR_TAGS.value,
            official_test_list=_OFFICIAL_TEST_LIST.value,
            **common.build_kwargs_from_flags(_COMMON, rejections),
        )

    sys.exit(common.run_build(build, _COMMON["out_dir"].value))


if __name__ == "__main__":
    app.run(main)
