"""`tfaesthetic.predict` and `tfaesthetic.serving.predictor`: JSON + attention overlays + distribution plots, export and Keras paths (issue 5)."""

import json
import os

import keras
import numpy as np
import pytest
from absl import flags
from PIL import Image

from tests._serving import fixtures as fx
from tfaesthetic import predict
from tfaesthetic.serving import export
from tfaesthetic.serving import predictor

PANEL = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    records = fx.write_tiny_records(str(root / "records"))
    keras.utils.set_random_seed(3)
    mracnn = fx.tiny_mracnn(records)
    cfan = fx.tiny_cfan(records)
    run_dir = root / "run"
    run_dir.mkdir()
    mracnn.save(str(run_dir / "model.keras"))
    (run_dir / "config.json").write_text(json.dumps({"data": {"records_dir": records}}))
    export_base = str(root / "export")
    mracnn_export = export.export_model(mracnn, records, export_base, model_name="mracnn")
    cfan_export = export.export_model(cfan, records, export_base, model_name="cfan")
    images = []
    for i, data in enumerate([fx.jpeg_bytes(seed=1, size=(80, 60)), fx.png_bytes(seed=2, size=(50, 70))]):
        path = root / ("photo one.jpg" if i == 0 else "img3.png")
        path.write_bytes(data)
        images.append(str(path))
    bad = root / "broken.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    return dict(root=root, records=records, run_dir=str(run_dir), mracnn_export=os.path.dirname(mracnn_export),
                cfan_export=cfan_export, images=images, bad=str(bad))


def _check_png(path, size):
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == size
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 1.0  # not a blank canvas


def test_predict_from_export_writes_json_and_both_png_kinds(setup, tmp_path):
    out_dir = str(tmp_path / "out")
    report = predictor.predict(
        setup["images"], out_dir=out_dir, comments=["sharp and colourful, great light", ""],
        export_dir=setup["mracnn_export"], panel_size=PANEL,
    )
    on_disk = json.load(open(os.path.join(out_dir, "predictions.json")))
    assert on_disk == json.loads(json.dumps(report))
    values = np.arange(1, 11)
    for entry in on_disk["predictions"]:
        dist = np.array(entry["distribution"])
        assert dist.shape == (10,) and abs(dist.sum() - 1) < 1e-4 and (dist >= 0).all()
        assert abs(entry["mean_score"] - (dist * values).sum()) < 1e-3
        assert entry["label"] == ("good" if entry["mean_score"] > 5.0 else "bad")
        # T = 2 glimpse maps beside the image; the bar plot has its fixed size.
        _check_png(entry["attention_png"], (3 * PANEL, PANEL))
        _check_png(entry["distribution_png"], (480, 320))
    assert on_disk["predictions"][1]["comments"] == ""
    assert len({e["attention_png"] for e in on_disk["predictions"]}) == 2


def test_keras_run_dir_and_export_agree(setup, tmp_path):
    comments = ["too dark and blurry"]
    from_export = predictor.predict(setup["images"], out_dir=str(tmp_path / "a"), comments=comments,
                                  export_dir=setup["mracnn_export"], panel_size=PANEL)
    from_run = predictor.predict(setup["images"], out_dir=str(tmp_path / "b"), comments=comments,
                               run_dir=setup["run_dir"], panel_size=PANEL)
    for a, b in zip(from_export["predictions"], from_run["predictions"]):
        np.testing.assert_allclose(a["distribution"], b["distribution"], atol=1e-4)
        assert abs(a["mean_score"] - b["mean_score"]) < 1e-4


def test_cfan_personalised_rating_and_unknown_user(setup, tmp_path):
    known = predictor.predict(setup["images"], out_dir=str(tmp_path / "k"), comments=["great colours"], user="u2",
                            export_dir=setup["cfan_export"], panel_size=PANEL)
    unknown = predictor.predict(setup["images"], out_dir=str(tmp_path / "u"), comments=[""], user="stranger",
                              export_dir=setup["cfan_export"], panel_size=PANEL)
    for entry in known["predictions"]:
        assert entry["known_user"] is True and 0.0 <= entry["user_rating"] <= 1.0
        assert entry["label"] == ("good" if entry["agnostic_rating"] > 0.5 else "bad")
        _check_png(entry["attention_png"], (2 * PANEL, PANEL))  # one user map
        assert "distribution_png" not in entry  # CFAN predicts ratings, not a distribution
    for entry in unknown["predictions"]:
        assert entry["known_user"] is False
        assert abs(entry["user_rating"] - entry["agnostic_rating"]) < 1e-6
    # image_id defaults to the file stem: img3 is a training image of the records.
    assert [e["image_id"] for e in known["predictions"]] == ["photo one", "img3"]


def test_cli_main_reports_undecodable_file_and_goes_on(setup, tmp_path):
    out_dir = str(tmp_path / "cli")
    flag_values = flags.FlagValues()
    predict.define_flags(flag_values)
    argv = flag_values(["predict", f"--export_dir={setup['mracnn_export']}", f"--out_dir={out_dir}",
                        f"--panel_size={PANEL}", "--comments=nice", setup["images"][0], setup["bad"]])
    status = predict.run(argv, flag_values)
    assert status == 1
    entries = json.load(open(os.path.join(out_dir, "predictions.json")))["predictions"]
    assert "mean_score" in entries[0] and os.path.exists(entries[0]["distribution_png"])
    assert entries[1]["image"] == setup["bad"]
    # The message from its "image_bytes:" on (no TF assertion framing before it).
    assert entries[1]["error"].startswith("InvalidArgumentError: image_bytes: expected"), entries[1]["error"]


def test_importing_predict_defines_no_global_flags():
    # tfaesthetic.train defines --model/--records/--run_dir/--export_dir: absl would refuse
    # predict's definitions in a process that imports both.
    assert "panel_size" not in flags.FLAGS and "image_id" not in flags.FLAGS


def test_bad_arguments_name_what_was_received(setup, tmp_path):
    with pytest.raises(ValueError, match="exactly one of export_dir, model, run_dir"):
        predictor.load_predictor(export_dir=setup["mracnn_export"], run_dir=setup["run_dir"])
    with pytest.raises(ValueError, match="records_dir=None"):
        predictor.load_predictor(model=os.path.join(setup["run_dir"], "model.keras"))
    with pytest.raises(ValueError, match=r"--comments once or once per image \(2\). Received: 3"):
        predictor.predict(setup["images"], out_dir=str(tmp_path), comments=["a", "b", "c"],
                        export_dir=setup["mracnn_export"])
    with pytest.raises(FileNotFoundError, match="integer versions"):
        predictor.load_predictor(export_dir=str(tmp_path))


def test_attention_overlay_layout_and_scaling():
    from tfaesthetic.serving import visualize

    image = np.full((30, 40, 3), 200, np.uint8)
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0] = 1.0  # top-left peak
    maps[1, 3, 3] = 0.2  # bottom-right peak (scale does not matter)
    overlay = visualize.attention_overlay(image, maps, panel_size=32, alpha=0.5, cmap="gray")
    assert overlay.shape == (32, 96, 3) and overlay.dtype == np.uint8
    np.testing.assert_array_equal(overlay[:, :32], 200)  # the image panel, resized
    first, second = overlay[:, 32:64, 0].astype(int), overlay[:, 64:, 0].astype(int)
    assert first[0, 0] > first[-1, -1] and second[-1, -1] > second[0, 0]
    assert first[0, 0] == second[-1, -1]  # each map scaled to its own range
    # alpha = 0 shows the image only; a uniform map is drawn flat.
    np.testing.assert_array_equal(visualize.attention_overlay(image, maps, panel_size=32, alpha=0.0)[:, 32:64], 200)
    flat = visualize.attention_overlay(image, np.ones((4, 4)), panel_size=32)
    assert flat[:, 32:].std(axis=(0, 1)).max() == 0
    with pytest.raises(ValueError, match=r"Received: maps.shape=\(2, 3, 4, 4\)"):
        visualize.attention_overlay(image, np.ones((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"Received: distribution.shape=\(3,\), values.shape=\(10,\)"):
        visualize.save_distribution_plot("/dev/null", [0.2, 0.3, 0.5], range(1, 11))


def test_panel_size_is_bounded_with_a_one_line_error(tmp_path):
    low, high = predictor.PANEL_SIZE_RANGE
    image = tmp_path / "a.jpg"
    image.write_bytes(fx.jpeg_bytes(seed=1))
    for bad in (100000, 0, -5, high + 1, 2.5):
        # Refused before any model is loaded (the export path need not exist).
        with pytest.raises(ValueError, match=rf"--panel_size between {low} and {high} pixels. Received: --panel_size={bad}"):
            predictor.predict([str(image)], out_dir=str(tmp_path / "out"), export_dir=str(tmp_path / "none"),
                            panel_size=bad)
    fv = flags.FlagValues()
    predict.define_flags(fv)
    with pytest.raises(flags.IllegalFlagValueError, match="panel_size"):
        fv(["predict", "--panel_size=100000", str(image)])
    fv(["predict", f"--panel_size={high}", str(image)])
    assert fv.panel_size == high
