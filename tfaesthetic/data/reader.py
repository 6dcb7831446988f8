"""Reader: shards -> interleave -> shuffle -> decode -> parse -> batch -> prefetch.

`build_dataset(config, is_training)` is the one entry point of the input pipeline.
It batches with the **global** batch size (or, under
`strategy.distribute_datasets_from_function`, with the per-replica size derived from
`input_context`) and sets auto-shard policy DATA, which is valid under
`MirroredStrategy` and `MultiWorkerMirroredStrategy` whatever the number of shards.

Truncated shards: `tf.data` reports a truncated TFRecord as a `DataLossError`
without the file name, so `build_dataset` first calls `validate_shards`, which walks
the record framing of every shard of the split (a seek per record, no full read)
and compares sizes and fingerprints (sha256 of the size, first and last 64 KiB, stored
by the writer) with the manifest, so a shard of another build is refused by name;
it also checks that the stored vote vectors have the manifest's number of bins. A
problem raises `ShardError` naming the file. `validate_shards(..., full=True)`
also checks every record's CRC. A corrupt record met later, while training,
surfaces from `tf.data` as a `DataLossError` without the file:
`corrupt_shard_error` (or the `naming_corrupt_shards` context manager) finds the
file and returns a `ShardError` naming it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

import tensorflow as tf

from tfaesthetic import features as features_lib
from tfaesthetic import text as text_lib
from tfaesthetic.data import decoder as decoder_lib
from tfaesthetic.data import parser as parser_lib
from tfaesthetic.records import shards
from tfaesthetic.records import writer
from tfaesthetic.records.shards import ShardError  # noqa: F401  (raised here, exported by tfaesthetic.data)

AUTOTUNE = tf.data.AUTOTUNE

#: `DataConfig.cache="auto"` keeps a split's parsed examples in memory after the first
#: epoch when their estimated size (`cache_bytes`) is at most this many bytes per
#: input pipeline, and at most 1/8 of the machine's memory: the demo records (64 px,
#: a few MB) are cached, AVA at 224 px (255k images, ~38 GB of pixels) is not.
CACHE_AUTO_MAX_BYTES = 1 << 30

#: Mode "review", training branch: the reviews of this many images are expanded at
#: once, in parallel, and interleaved one by one, so that an image with many reviews
#: (AVA has up to 125) neither holds up a batch nor fills it with its own reviews.
#: 0 expands one image after the other (`flat_map`, as the evaluation branch does).
REVIEW_CYCLE_LENGTH = 8


def shard_paths(records_dir, split: str, manifest: Optional[dict] = None) -> list:
    """Paths of the shards of `split`, from the manifest, in name order.

    Raises:
        ShardError: a shard listed in the manifest is missing.
        ValueError: the split has no shard.
    """
    manifest = manifest if manifest is not None else writer.read_manifest(records_dir)
    if split not in features_lib.SPLITS:
        raise ValueError(f"Expected split in {features_lib.SPLITS}. Received: split={split!r}")
    names = sorted(n for n in manifest.get("files", {}).get("shards", {}) if n.startswith(split + "-"))
    if not names:
        raise ValueError(f"No {split!r} shards listed in {os.path.join(str(records_dir), writer.MANIFEST)}")
    paths = [os.path.join(str(records_dir), n) for n in names]
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise ShardError(f"Records shard {path} is listed in the manifest but does not exist.")
    return paths


def validate_shards(records_dir, split: Optional[str] = None, *, full: bool = False,
                    manifest: Optional[dict] = None) -> dict:
    """Checks that the shards of `split` (all splits when None) are complete.

    Args:
        records_dir: the records directory.
        split: a split name or None for all.
        full: also read every record with `tf.data` (checks CRCs; reads all bytes).
        manifest: the records' manifest when the caller has read it (else read here).

    Returns:
        `{path: number_of_records}`.

    Raises:
        ShardError: naming the file that is missing, truncated, changed size since
            the manifest was written, or corrupt.
    """
    manifest = manifest if manifest is not None else writer.read_manifest(records_dir)
    manifest_path = os.path.join(str(records_dir), writer.MANIFEST)
    sizes = manifest.get("files", {}).get("shard_bytes", {})
    fingerprints = manifest.get("files", {}).get("shard_fingerprints", {})
    splits = [split] if split else [s for s in features_lib.SPLITS if manifest.get("splits", {}).get(s, 0) > 0]
    counts = {}
    for s in splits:
        for path in shard_paths(records_dir, s, manifest):
            counts[path] = shards.check_framing(path)
            expected = sizes.get(os.path.basename(path))
            actual = tf.io.gfile.stat(path).length
            if expected is not None and int(expected) != actual:
                raise ShardError(
                    f"Records shard {path} has {actual} bytes, the manifest says {expected}: "
                    "it is truncated or was modified after the records were written."
                )
            fingerprint = fingerprints.get(os.path.basename(path))
            if fingerprint is not None and writer.shard_fingerprint(path) != fingerprint:
                raise ShardError(
                    f"Records shard {path} does not belong to {manifest_path}: its fingerprint differs from the "
                    "manifest's (it was written by another build or modified since). Rebuild the records."
                )
            _check_num_bins(path, manifest, manifest_path)
            if full:
                try:
                    n = 0
                    for _ in tf.data.TFRecordDataset(path, buffer_size=1 << 20):
                        n += 1
                except tf.errors.DataLossError as e:
                    raise ShardError(f"Records shard {path} is corrupt: {e.message}") from None
    return counts


def _check_num_bins(path: str, manifest: dict, manifest_path: str) -> None:
    """The first record of a shard stores as many vote counts as the manifest's score scale has bins."""
    if not manifest.get("has_votes", False):
        return
    num_bins = len(manifest.get("score_scale", {}).get("values", ()))
    try:
        first = [s.numpy() for s in tf.data.TFRecordDataset(path).take(1)]
    except tf.errors.DataLossError as e:
        raise ShardError(f"Records shard {path} is corrupt: {e.message}") from None
    for serialized in first:
        example = tf.train.Example.FromString(serialized)
        stored = len(example.features.feature[features_lib.VOTES].int64_list.value)
        if stored != num_bins:
            raise ShardError(
                f"{manifest_path} says {num_bins} score bins, but {path} stores {stored} vote counts per image: "
                "the manifest was edited or belongs to other records. Rebuild the records."
            )


def corrupt_shard_error(records_dir, error: Exception, split: Optional[str] = None) -> Exception:
    """The `ShardError` naming the corrupt shard behind a `tf.data` `DataLossError` (or `error` itself).

    Reads the shards of `split` (all splits when None) with their CRCs checked,
    which costs a full read and is only done once the error has happened.
    """
    try:
        validate_shards(records_dir, split, full=True)
    except ShardError as e:
        return e
    except Exception:  # noqa: BLE001 -- the original error is the better report then.
        return error
    message = getattr(error, "message", None) or str(error)
    return ShardError(f"Corrupt record in the records of {records_dir} ({message}); no single shard could be named.")


@contextlib.contextmanager
def naming_corrupt_shards(records_dir, split: Optional[str] = None):
    """Re-raises a `tf.errors.DataLossError` inside the block as the `ShardError` naming the file.

    Usage: `with naming_corrupt_shards(config.records_dir): model.fit(dataset, ...)`.
    """
    try:
        yield
    except tf.errors.DataLossError as e:
        raise corrupt_shard_error(records_dir, e, split) from e


def num_examples(records_dir, split: str, mode: str = "image") -> int:
    """Examples of one epoch of `split`: images (mode "image") or rated reviews (mode "review")."""
    manifest = writer.read_manifest(records_dir)
    if mode == "image":
        return int(manifest["splits"].get(split, 0))
    if mode == "review":
        reviews = manifest.get("reviews")
        if reviews is None:
            raise ValueError(
                f"{os.path.join(str(records_dir), writer.MANIFEST)} has no 'reviews' counts; rebuild the records."
            )
        return int(reviews.get(split, 0))
    raise ValueError(f"Expected mode in {tuple(parser_lib.MODES)}. Received: mode={mode!r}")


def warm_protocol(config) -> bool:
    """Whether `config` asks for the warm split protocol (review mode only)."""
    return getattr(config, "protocol", "cold") == "warm" and config.mode == "review"


def cache_bytes(config, manifest: dict, split: str, is_training: bool) -> int:
    """Estimated bytes of the parsed (decoded, resized) examples of `split`, as `.cache()` would hold them."""
    images = int(manifest.get("splits", {}).get(split, 0))
    per_image = 64 + 4 * int(config.max_len)  # labels, ids and tokens
    if "image" in tuple(config.features):
        pixels = int(config.image_size) ** 2 * 3 * (1 if is_training else 4)  # uint8 / float32
        if mirrors_cached(config, is_training):
            pixels *= 2  # the image and its mirror image
        per_image += pixels
    total = images * per_image
    if config.mode == "review":
        total += int((manifest.get("reviews") or {}).get(split, 0)) * (12 + 4 * int(config.max_len))
    return total


def mirrors_cached(config, is_training: bool) -> bool:
    """Whether a cached training split also holds each image's mirror image (image mode, augmented)."""
    return (is_training and config.mode == "image" and getattr(config, "augment", True)
            and "image" in tuple(config.features))


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def should_cache(config, manifest: dict, split: str, is_training: bool, num_pipelines: int = 1) -> bool:
    """The `DataConfig.cache` decision: True/False as given; "auto" caches when the split fits.

    "auto" caches when `cache_bytes(...) / num_pipelines` is at most
    `CACHE_AUTO_MAX_BYTES` and at most 1/8 of the physical memory. Caching removes
    decoding and resizing from every epoch after the first (the training branch
    still shuffles and flips every epoch); it costs that memory for the whole run.

    Raises:
        ValueError: `cache` is none of True, False, "auto".
    """
    cache = getattr(config, "cache", False)
    if isinstance(cache, bool):
        return cache
    if cache != "auto":
        raise ValueError(f"Expected DataConfig.cache True, False or 'auto'. Received: cache={cache!r}")
    need = cache_bytes(config, manifest, split, is_training) / max(1, int(num_pipelines))
    memory = _memory_bytes()
    return need <= CACHE_AUTO_MAX_BYTES and (not memory or need <= memory / 8)


def make_parser(config, manifest: dict, records_dir, split=None) -> parser_lib.Parser:
    """The `Parser` for `config` and the records' manifest (checks image availability)."""
    feats = tuple(config.features)
    if "image" in feats and not manifest.get("has_images", False):
        raise ValueError(
            f"The records in {records_dir!r} hold no images (manifest has_images=false), but the config asks "
            f"for 'image'. Received: features={feats!r}; use a text-only variant, e.g. features=('tokens',)."
        )
    vocab_file = getattr(config, "vocab_file", "") or ""
    vocabulary = text_lib.Vocabulary.from_file(vocab_file) if vocab_file else None
    scale = features_lib.ScoreScale.from_json(manifest["score_scale"])
    return parser_lib.Parser(
        mode=config.mode,
        features=feats,
        image_size=config.image_size,
        max_len=config.max_len,
        num_bins=scale.num_bins,
        score_values=scale.values,
        threshold=scale.threshold,
        num_users=int(manifest.get("num_users", 0)),
        augment=getattr(config, "augment", True),
        vocabulary=vocabulary,
        seed=getattr(config, "seed", None),
        warm_part=split if warm_protocol(config) else None,
    )


def build_dataset(config, is_training: bool, *, split=None, include_metadata=False, input_context=None, manifest=None):
    """Builds the batched `tf.data.Dataset` of `(features, labels[, metadata])`.

    Args:
        config: a `tfaesthetic.config.DataConfig`.
        is_training: training branch (shuffle, augmentation, `drop_remainder`).
        split: "train", "val" or "test"; default "train" when training, else "val".
        include_metadata: also yield `{"image_id", "tag"}`.
        input_context: a `tf.distribute.InputContext` (from
            `distribute_datasets_from_function`): shard by input pipeline and batch
            with the per-replica batch size.
        manifest: the records' manifest when the caller has read it (the trainer's
            Task reads it once and passes it down); else it is read here.

    Returns:
        A `tf.data.Dataset` (one pass over the split; repeat it yourself if needed).

    Raises:
        ValueError: unknown mode/features, "image" asked from text-only records.
        ShardError: a shard is missing or truncated (names the file).
    """
    records_dir = config.records_dir
    if not records_dir:
        raise ValueError("DataConfig.records_dir is empty. Received: records_dir=''")
    split = split or ("train" if is_training else "val")
    manifest = manifest if manifest is not None else writer.read_manifest(records_dir)
    parser = make_parser(config, manifest, records_dir, split)
    # Warm protocol: every part is cut from the training records' reviews (the
    # val/test records, images never trained on, belong to the cold protocol).
    shard_split = "train" if warm_protocol(config) else split
    paths = shard_paths(records_dir, shard_split, manifest)
    if getattr(config, "validate_shards", True):
        validate_shards(records_dir, shard_split, manifest=manifest)

    seed = getattr(config, "seed", None)
    batch_size = int(config.global_batch_size)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if batch_size < 1:
        raise ValueError(f"Expected a batch size >= 1. Received: global_batch_size={config.global_batch_size}")

    files = tf.data.Dataset.from_tensor_slices(paths)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(paths) >= input_context.num_input_pipelines:
            files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            shard_records = True
    if is_training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    deterministic = (not is_training) or seed is not None
    dataset = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20),
        cycle_length=min(len(paths), 8),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    if shard_records:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    num_pipelines = input_context.num_input_pipelines if input_context is not None else 1
    cache = should_cache(config, manifest, split, is_training, num_pipelines)
    if is_training and not cache:
        dataset = dataset.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    decoder = decoder_lib.Decoder(parser.decoder_outputs())
    image_mode = config.mode == "image"

    augment = parser.augment_image if is_training else (lambda parsed: parsed)

    def finish(parsed):
        # Per-image steps after the (cacheable) deterministic parse, fused in one map
        # (per image, in parallel: a flip of a whole batch in one op is slower, it
        # runs on one core).
        parsed = augment(parsed)
        if not image_mode:
            return parsed
        feats, labels, metadata = parser.image_example(parsed)
        return (feats, labels, metadata) if include_metadata else (feats, labels)

    map_kwargs = dict(num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    # Cached image-mode pipeline: the per-image steps after the cache (the training flip,
    # the outputs' structure) run once per batch, with no per-image map left after the
    # cache. On the training branch the cache holds each image with its mirror image
    # (`[2, S, S, 3]`, twice the pixels) and a batch takes one of the two per image at
    # random, with one gather (`Parser.augment_image`'s flip, probability 1/2 per image):
    # 3x less CPU per example at 64 px, 1.5x at 224 px than a flip per image.
    batched_finish = cache and image_mode
    if cache:
        mirrored = batched_finish and mirrors_cached(config, is_training) and parser.augment

        def parse(serialized):
            parsed = parser.parse_image(decoder(serialized), is_training)
            if mirrored:  # [2, S, S, 3]: the image and its mirror image
                parsed["image"] = tf.stack([parsed["image"], tf.reverse(parsed["image"], [1])])
            return parsed

        dataset = dataset.map(parse, **map_kwargs).cache()
        if is_training:
            dataset = dataset.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        # From the cache, an example costs a shuffle and a copy into its batch (image
        # mode: `finish_batch` below); the review mode's per-image steps run on one
        # thread: more would only take cores from the training step.
        if not batched_finish:
            dataset = dataset.map(finish)
    else:
        dataset = dataset.map(lambda s: finish(parser.parse_image(decoder(s), is_training)), **map_kwargs)

    if not image_mode:
        if is_training and REVIEW_CYCLE_LENGTH:
            dataset = dataset.interleave(
                parser.review_examples, cycle_length=REVIEW_CYCLE_LENGTH, block_length=1,
                num_parallel_calls=AUTOTUNE, deterministic=deterministic,
            )
        else:
            dataset = dataset.flat_map(parser.review_examples)
        if not include_metadata:
            dataset = dataset.map(lambda f, l, m: (f, l), **map_kwargs)
        if is_training:
            # Reviews of one image arrive together; mix them across images. The
            # buffered reviews of one image share its decoded pixels.
            dataset = dataset.shuffle(max(64, min(config.shuffle_buffer, 8 * batch_size)), seed=seed)

    dataset = dataset.batch(batch_size, drop_remainder=is_training, num_parallel_calls=None if cache else AUTOTUNE)
    if batched_finish:
        def finish_batch(parsed):
            # `finish` on a whole batch: one random draw and one gather for the batch's
            # flips (`Parser.augment_image`'s distribution), the outputs restructured once.
            if mirrored:
                parsed = dict(parsed)
                pairs = parsed["image"]  # [B, 2, S, S, 3]
                flip = tf.cast(tf.random.uniform([tf.shape(pairs)[0]], 0, 1.0, seed=seed) < 0.5, tf.int32)
                parsed["image"] = tf.gather(pairs, flip, axis=1, batch_dims=1)
            feats, labels, metadata = parser.image_example(parsed)
            return (feats, labels, metadata) if include_metadata else (feats, labels)

        dataset = dataset.map(finish_batch)
    dataset = dataset.prefetch(AUTOTUNE)

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = deterministic
    return dataset.with_options(options)
