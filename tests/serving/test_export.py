"""TF Serving export: raw-input + tensor signatures, fresh-process reload, bad inputs (issue 5)."""

import base64
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests._serving import fixtures as fx
from tfaesthetic.serving import export
from tfaesthetic import text
from tfaesthetic.data import parser

RUNNER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_serving", "run_saved_model.py")
ATOL = 1e-4


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Records, two tiny models, their exports and one fresh serving process over them."""
    root = tmp_path_factory.mktemp("export")
    records = fx.write_tiny_records(str(root / "records"))
    keras.utils.set_random_seed(7)
    mracnn = fx.tiny_mracnn(records)
    cfan = fx.tiny_cfan(records)
    export_base = str(root / "export")
    mracnn_dir = export.export_model(mracnn, records, export_base, model_name="mracnn")
    cfan_dir = export.export_model(cfan, records, export_base, model_name="cfan")

    jpegs = [fx.jpeg_bytes(seed=i, size=(64 + 8 * i, 56)) for i in range(3)]
    png = fx.png_bytes(seed=9)
    images = jpegs + [png]
    comments = [
        "Great colours and a sharp subject, nice composition.",
        "blurry and too dark\nthe horizon is tilted",
        "",  # empty comment: image-only evidence
        "Wonderful light!!! unknownword",
    ]
    users = ["u1", "u3", "nobody-knows-me", "u0"]
    reviews = ["great sharp colours", "", "too dark and blurry", "nice light"]
    image_ids = ["img0", "img4", "never-seen", "img2"]

    requests = [
        {"name": "mracnn_hex", "export_dir": mracnn_dir,
         "hex": {"image_bytes": [b.hex() for b in images], "comments": [c.encode().hex() for c in comments]}},
        {"name": "mracnn_rest_rows", "export_dir": mracnn_dir,
         "body": {"instances": [{"image_bytes": _b64(b), "comments": c} for b, c in zip(images, comments)]}},
        {"name": "mracnn_rest_columns", "export_dir": mracnn_dir,
         "body": {"inputs": {"image_bytes": [_b64(b) for b in images], "comments": comments}}},
        {"name": "mracnn_bad_bytes", "export_dir": mracnn_dir,
         "body": {"instances": [{"image_bytes": _b64(jpegs[0]), "comments": "ok"},
                                {"image_bytes": _b64(b"this is not an image"), "comments": "ok"}]}},
        {"name": "cfan_rest_rows", "export_dir": cfan_dir,
         "body": {"instances": [{"image_bytes": _b64(b), "comments": r, "user_id": u, "image_id": i}
                                for b, r, u, i in zip(images, reviews, users, image_ids)]}},
    ]
    requests_path = root / "requests.json"
    requests_path.write_text(json.dumps(requests))
    out_dir = root / "served"
    out_dir.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, RUNNER, str(requests_path), str(out_dir)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(
        records=records, mracnn=mracnn, cfan=cfan, export_base=export_base, mracnn_dir=mracnn_dir, cfan_dir=cfan_dir,
        images=images, comments=comments, users=users, reviews=reviews, image_ids=image_ids, served=str(out_dir),
    )


def _served(world, name):
    path = os.path.join(world["served"], name + ".npz")
    assert os.path.exists(path), open(os.path.join(world["served"], name + ".error")).read()
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _decode_in_process(images, size):
    return np.stack([parser.decode_image(tf.constant(b), size).numpy() for b in images])


def _tokens_in_process(records, comments, max_len):
    vocab = text.Vocabulary.from_file(os.path.join(records, "vocab.txt"))
    return text.pad_tokens(text.tokenize(comments, vocab), max_len).numpy()


def _expected_mracnn(world):
    model = world["mracnn"]
    size, max_len = model.input["image"].shape[1], model.input["tokens"].shape[1]
    inputs = {
        "image": _decode_in_process(world["images"], size),
        "tokens": _tokens_in_process(world["records"], world["comments"], max_len),
    }
    out = model(inputs, training=False)
    dist = np.asarray(out["distribution"])
    values = np.arange(1, 11, dtype=np.float64)
    mean = (dist * values).sum(-1)
    return inputs, {"distribution": dist, "mean_score": mean, "label": (mean > 5.0).astype(np.int32),
                    "attention": np.asarray(out["attention"]), "has_comment": inputs["tokens"].any(-1).astype(np.int32)}


@pytest.mark.slow  # a fresh serving process / the saved_model_cli process
def test_fresh_process_imports_only_tensorflow(world):
    modules = open(os.path.join(world["served"], "modules.txt")).read().split()
    assert "tfaesthetic" not in modules
    assert "tensorflow" in modules and "tensorflow_text" in modules


@pytest.mark.slow  # a fresh serving process / the saved_model_cli process
def test_raw_signature_in_fresh_process_matches_keras_model(world):
    _, expected = _expected_mracnn(world)
    served = _served(world, "mracnn_hex")
    assert set(served) == {"distribution", "mean_score", "label", "attention", "has_comment"}
    np.testing.assert_array_equal(served["has_comment"], [1, 1, 0, 1])
    for key, value in expected.items():
        np.testing.assert_allclose(served[key], value, atol=ATOL, err_msg=key)
    # Sanity: inputs differ, so do predictions (the comparison is not vacuous).
    assert np.abs(served["distribution"][0] - served["distribution"][1]).max() > 1e-6


@pytest.mark.slow  # a fresh serving process / the saved_model_cli process
def test_rest_body_with_b64_images_gives_the_same_answer(world):
    direct = _served(world, "mracnn_hex")
    for name in ("mracnn_rest_rows", "mracnn_rest_columns"):
        served = _served(world, name)
        for key in direct:
            np.testing.assert_allclose(served[key], direct[key], atol=ATOL, err_msg=f"{name}:{key}")


def test_tensor_signature_matches_keras_model(world):
    inputs, expected = _expected_mracnn(world)
    loaded = tf.saved_model.load(world["mracnn_dir"])
    out = loaded.signatures["serve_tensors"](image=tf.constant(inputs["image"]), tokens=tf.constant(inputs["tokens"]))
    for key, value in expected.items():
        np.testing.assert_allclose(out[key].numpy(), value, atol=ATOL, err_msg=key)


@pytest.mark.slow  # a fresh serving process / the saved_model_cli process
def test_undecodable_image_bytes_error_names_the_input(world):
    message = open(os.path.join(world["served"], "mracnn_bad_bytes.error")).read()
    assert message.startswith("InvalidArgumentError")
    assert "image_bytes" in message and "batch positions" in message
    assert "[1]" in message  # the second row is at fault
    # The same in process, including an empty string.
    loaded = tf.saved_model.load(world["mracnn_dir"])
    for bad in (b"", b"GIF", b"\x00\x01\x02garbage"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes"):
            loaded.signatures["serving_default"](image_bytes=tf.constant([bad]), comments=tf.constant(["nice"]))


def test_empty_comment_is_all_padding_tokens(world):
    model = world["mracnn"]
    max_len = model.input["tokens"].shape[1]
    served = _served(world, "mracnn_hex")
    inputs, _ = _expected_mracnn(world)
    # Row 2 has an empty comment: tokens are all padding, as for an image without comments.
    assert not inputs["tokens"][2].any()
    image_only = model({"image": inputs["image"][2:3], "tokens": np.zeros((1, max_len), "int32")}, training=False)
    np.testing.assert_allclose(served["distribution"][2], np.asarray(image_only["distribution"])[0], atol=ATOL)
    # Whitespace / punctuation only is the same as empty.
    loaded = tf.saved_model.load(world["mracnn_dir"])
    sig = loaded.signatures["serving_default"]
    image = tf.constant([world["images"][2]] * 3)
    out = sig(image_bytes=image, comments=tf.constant(["", "   \n ", "?!... :-)"]))
    np.testing.assert_allclose(out["distribution"].numpy()[1:], np.repeat(out["distribution"].numpy()[:1], 2, 0), atol=1e-6)
    np.testing.assert_array_equal(out["has_comment"].numpy(), [0, 0, 0])
    # MFB fusion (the paper's) multiplies the streams; an empty comment gives the Text-CNN's
    # learned "no comment" vector, not zeros, so the prediction still depends on the image.
    images = tf.constant(world["images"][:3])
    out = sig(image_bytes=images, comments=tf.constant(["", "", ""]))
    dist = out["distribution"].numpy()
    assert np.abs(dist[0] - dist[1]).max() > 1e-6 and np.abs(dist[0] - dist[2]).max() > 1e-6
    np.testing.assert_array_equal(out["has_comment"].numpy(), [0, 0, 0])
    text_cnn = model.get_layer("text_cnn")
    assert text_cnn.empty_text == "learned" and np.abs(text_cnn.empty_embedding.numpy()).min() > 0


@pytest.mark.parametrize("fusion", ["concat", "product"])
def test_empty_comment_predicts_from_the_image_with_other_fusions(world, fusion):
    keras.utils.set_random_seed(11)
    model = fx.tiny_mracnn(world["records"], fusion=fusion)
    fns = export.ServingFunctions(model, world["records"])
    out = fns(image_bytes=world["images"][:3], comments=["", "", ""])
    dist = out["distribution"].numpy()
    assert np.abs(dist[0] - dist[1]).max() > 1e-6 and np.abs(dist[0] - dist[2]).max() > 1e-6
    np.testing.assert_array_equal(out["has_comment"].numpy(), [0, 0, 0])


@pytest.mark.slow  # a fresh serving process / the saved_model_cli process
def test_cfan_user_rating_and_unknown_user_fallback(world):
    served = _served(world, "cfan_rest_rows")
    assert {"user_rating", "agnostic_rating", "label", "known_user", "attention", "has_comment"} <= set(served)
    np.testing.assert_array_equal(served["has_comment"], [1, 0, 1, 1])
    np.testing.assert_array_equal(served["known_user"], [1, 1, 0, 1])
    # Unknown user -> the user-agnostic prediction.
    np.testing.assert_allclose(served["user_rating"][2], served["agnostic_rating"][2], atol=1e-6)
    model = world["cfan"]
    size, max_len = model.input["image"].shape[1], model.input["review"].shape[1]
    users = {u: i for i, u in enumerate(fx.USERS)}
    image_index = {f"img{i}": i for i in range(fx.NUM_IMAGES)}
    inputs = {
        "image": _decode_in_process(world["images"], size),
        "review": _tokens_in_process(world["records"], world["reviews"], max_len),
        "user_index": np.array([users.get(u, len(fx.USERS)) for u in world["users"]], "int32"),
        "image_index": np.array([image_index.get(i, fx.NUM_IMAGES) for i in world["image_ids"]], "int32"),
    }
    out = model(inputs, training=False)
    known = [0, 1, 3]
    np.testing.assert_allclose(served["user_rating"][known], np.asarray(out["user_rating"]).reshape(-1)[known], atol=ATOL)
    np.testing.assert_allclose(served["agnostic_rating"], np.asarray(out["agnostic_rating"]).reshape(-1), atol=ATOL)
    np.testing.assert_allclose(served["attention"], np.asarray(out["attention"]), atol=ATOL)
    np.testing.assert_array_equal(served["label"], (served["agnostic_rating"] > 0.5).astype(np.int32))
    # Row 1 has an empty review: the all-padding review (the no-review path).
    assert not inputs["review"][1].any()


@pytest.mark.slow  # a fresh serving process / the saved_model_cli process
def test_saved_model_cli_lists_signatures_and_outputs(world):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "show", "--all", "--dir", world["cfan_dir"]], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = proc.stdout
    for name in ("signature_def['serving_default']", "signature_def['serve_tensors']"):
        assert name in shown
    for name in ("inputs['image_bytes']", "inputs['comments']", "inputs['user_id']", "inputs['image_id']",
                 "inputs['image']", "inputs['review']", "inputs['user_index']",
                 "outputs['user_rating']", "outputs['agnostic_rating']", "outputs['label']", "outputs['attention']",
                 "outputs['known_user']", "outputs['has_comment']"):
        assert name in shown, name


def test_models_config_sidecar_and_versions(world):
    config = open(os.path.join(world["export_base"], "models.config")).read()
    for name in ("mracnn", "cfan"):
        assert f'name: "{name}"' in config and f'base_path: "/models/{name}"' in config
    assert config.count("config {") == 2 and config.count('model_platform: "tensorflow"') == 2
    sidecar = json.load(open(os.path.join(world["mracnn_dir"], "assets.extra", "tfaesthetic.json")))
    assert sidecar["version"] == 1 and sidecar["score_scale"]["values"] == [float(v) for v in range(1, 11)]
    sig = sidecar["signatures"]
    assert set(sig["serving_default"]["inputs"]) == {"image_bytes", "comments"}
    assert set(sig["serve_tensors"]["inputs"]) == {"image", "tokens"}
    assert set(sig["serving_default"]["outputs"]) == {"distribution", "mean_score", "label", "attention", "has_comment"}
    assert os.path.basename(world["mracnn_dir"]) == "1"


def test_next_version_and_refusals(world, tmp_path):
    base = str(tmp_path / "export")
    small = fx.tiny_mracnn(world["records"], variant="text_only")  # the cheapest export
    first = export.export_model(small, world["records"], base, model_name="m", serving_base_path=None)
    config = open(os.path.join(base, "models.config")).read()
    assert f'base_path: "{os.path.abspath(os.path.join(base, "m"))}"' in config
    second = export.export_model(small, os.path.join(world["records"], "manifest.json"), base, model_name="m")
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert not [d for d in os.listdir(os.path.join(base, "m")) if d.startswith(".tmp")]
    with pytest.raises(FileExistsError, match="Export version exists"):
        export.export_model(world["mracnn"], world["records"], base, model_name="m", version=1)
    with pytest.raises(ValueError, match="model_name"):
        export.export_model(world["mracnn"], world["records"], base, model_name="bad name/..")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        export.export_model(world["mracnn"], str(tmp_path), base, model_name="m")


def test_vbpr_export_user_rating_and_label(world, tmp_path):
    from tfaesthetic.models.bpr import BPR
    from tfaesthetic.records import writer

    model = BPR.from_manifest(writer.read_manifest(world["records"]), factor_dim=4, visual=True, visual_dim=4,
                              backbone="tiny", image_size=fx.IMAGE_SIZE, seed=0)
    path = export.export_model(model, world["records"], str(tmp_path), model_name="vbpr")
    signature = tf.saved_model.load(path).signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"image_bytes", "user_id", "image_id"}
    out = signature(image_bytes=tf.constant(world["images"][:2]), user_id=tf.constant(["u1", "stranger"]),
                    image_id=tf.constant(["img1", "img2"]))
    assert set(out) == {"user_rating", "known_user", "label"}
    np.testing.assert_array_equal(out["known_user"].numpy(), [1, 0])
    np.testing.assert_array_equal(out["label"].numpy(), (out["user_rating"].numpy() > 0.5).astype(np.int32))


def test_serving_preprocessing_equals_the_input_pipeline(world):
    """Train/serve skew check: the records pipeline and the raw signature see identical inputs."""
    from tfaesthetic.config import DataConfig
    from tfaesthetic.data.reader import build_dataset

    config = DataConfig(records_dir=world["records"], mode="image", features=("image", "tokens"),
                        image_size=fx.IMAGE_SIZE, max_len=fx.MAX_LEN, global_batch_size=fx.NUM_IMAGES, augment=False)
    feats, _, meta = next(iter(build_dataset(config, is_training=False, split="train", include_metadata=True)))
    order = [int(i.decode()[3:]) for i in meta["image_id"].numpy()]
    fns = export.ServingFunctions(world["mracnn"], world["records"])
    raw = fns.preprocess(
        image_bytes=tf.constant([fx.jpeg_bytes(seed=100 + i) for i in order]),
        comments=tf.constant(["\n".join(fx.comments_of(i)) for i in order]),
    )
    np.testing.assert_array_equal(raw["tokens"].numpy(), feats["tokens"].numpy())
    np.testing.assert_allclose(raw["image"].numpy(), feats["image"].numpy(), atol=1e-4)
    assert feats["tokens"].numpy().any()


@pytest.mark.parametrize("variant, raw_inputs", [("text_only", ["comments"]), ("vision_only", ["image_bytes"])])
def test_single_stream_variants_take_only_their_raw_input(world, variant, raw_inputs):
    fns = export.ServingFunctions(fx.tiny_mracnn(world["records"], variant=variant), world["records"])
    assert [s.name for s in fns.raw_signature] == raw_inputs
    raw = {"comments": ["nice light", ""], "image_bytes": world["images"][:2]}
    out = fns(**{k: raw[k] for k in raw_inputs})
    assert out["distribution"].shape == (2, 10)
    assert ("attention" in out) == (variant == "vision_only")
    assert ("has_comment" in out) == (variant == "text_only")


def test_records_that_do_not_match_the_model_are_refused(world, tmp_path):
    from tfaesthetic.models.mracnn import MRACNN

    wrong_vocab = MRACNN(vocab_size=5, num_bins=10, backbone="tiny", image_size=fx.IMAGE_SIZE, max_len=fx.MAX_LEN,
                         variant="text_only", embedding_dim=4, num_filters=2)
    with pytest.raises(ValueError, match=r"vocab_size=5\. Received: \d+ from vocab.txt"):
        export.ServingFunctions(wrong_vocab, world["records"])
    wrong_bins = MRACNN(vocab_size=export.ServingFunctions(world["mracnn"], world["records"]).vocabulary.size,
                        num_bins=7, backbone="tiny", image_size=fx.IMAGE_SIZE, max_len=fx.MAX_LEN,
                        variant="text_only", embedding_dim=4, num_filters=2)
    with pytest.raises(ValueError, match=r"num_bins=7\. Received: 10 from score_scale"):
        export.export_model(wrong_bins, world["records"], str(tmp_path), model_name="m")
