"""Builds the procedural demo records (SPEC §2.5): python records/build_demo.py [--out_dir ...]."""

import sys

from absl import app
from absl import flags

_OUT_DIR = flags.DEFINE_string("out_dir", "./demo_records", "Output directory of the records.")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 800, "Number of images (80/10/10 train/val/test).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Side length of the square images, in pixels.")
_NUM_USERS = flags.DEFINE_integer("num_users", 40, "Number of simulated users (>= 10).")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 2, "Shards per split.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the same flags give the same shards.")
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", None, "Processes for the per-image work; default: one per core (same records whatever the number).",
    lower_bound=1,
)


def main(argv):
    del argv
    from tfaesthetic import console

    console.setup_build_cli()  # quiet TensorFlow start-up, progress of long builds
    from tfaesthetic.records import demo

    try:
        manifest = demo.build_demo(
            _OUT_DIR.value,
            num_images=_NUM_IMAGES.value,
            image_size=_IMAGE_SIZE.value,
            num_users=_NUM_USERS.value,
            seed=_SEED.value,
            num_shards=_NUM_SHARDS.value,
            num_workers=_NUM_WORKERS.value,
            command_line=" ".join(sys.argv),
        )
    except (ValueError, OSError) as e:  # bad flags, an unwritable --out_dir: one line, no traceback
        print(f"error: {console.user_error(e) or e}", file=sys.stderr)
        return 1
    print(demo.summary(manifest, _OUT_DIR.value))


if __name__ == "__main__":
    app.run(main)
