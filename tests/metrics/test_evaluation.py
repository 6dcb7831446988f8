"""Whole-split evaluation (seed 003 §IV-A, Table V) against SciPy."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tests.metrics.test_distribution import correlated_pair, reference
from tfaesthetic.features import AVA_SCALE, PHOTONET_SCALE
from tfaesthetic.losses.emd import emd
from tfaesthetic.metrics import average_ranks, evaluate_distributions, evaluate_model, format_table


def test_average_ranks_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=200).astype(float)
    np.testing.assert_allclose(average_ranks(values), stats.rankdata(values, method="average"))
    np.testing.assert_allclose(average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


def test_emd_r1_eq1_is_the_losses_emd_on_vote_counts():
    # Eq. 1 with r = 1, written from the paper: mean over bins of |CDF_q - CDF_q_hat|,
    # on vote counts (normalised first) and softmax-like predictions.
    rng = np.random.default_rng(6)
    votes = rng.integers(0, 30, size=(50, 10)).astype(float)
    q_hat = rng.dirichlet(np.ones(10), size=50)
    q = votes / votes.sum(axis=1, keepdims=True)
    want = np.mean(np.abs(np.cumsum(q, axis=1) - np.cumsum(q_hat, axis=1)), axis=1).mean()
    got = evaluate_distributions(votes, q_hat)["overall"]["emd"]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got, np.mean(np.asarray(emd(votes, q_hat, r=1))), rtol=1e-12)


def test_overall_agrees_with_scipy():
    rng = np.random.default_rng(1)
    q, q_hat = correlated_pair(rng, 500)
    got = evaluate_distributions(q, q_hat, scale=AVA_SCALE)["overall"]
    want = reference(q.astype(float), q_hat.astype(float), AVA_SCALE.values, 5.0)
    assert got["count"] == 500
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, atol=1e-9, err_msg=name)


def test_srcc_with_ties_agrees_with_scipy():
    rng = np.random.default_rng(2)
    true_bin = rng.integers(0, 7, size=300)
    pred_bin = np.clip(true_bin + rng.integers(-1, 2, size=300), 0, 6)
    got = evaluate_distributions(np.eye(7)[true_bin], np.eye(7)[pred_bin], scale=PHOTONET_SCALE)["overall"]
    np.testing.assert_allclose(got["srcc"], stats.spearmanr(true_bin, pred_bin)[0], atol=1e-12)
    np.testing.assert_allclose(got["plcc"], stats.pearsonr(true_bin, pred_bin)[0], atol=1e-12)


def test_per_tag_breakdown_table_v():
    rng = np.random.default_rng(3)
    q, q_hat = correlated_pair(rng, 300)
    tags = np.stack([rng.integers(-1, 3, size=300), rng.integers(-1, 3, size=300)], axis=1)
    results = evaluate_distributions(q, q_hat, tags=tags, tag_names=["animal", "landscape", "portrait"])
    assert list(results["per_tag"]) == ["animal", "landscape", "portrait"]
    for tag_id, name in enumerate(["animal", "landscape", "portrait"]):
        member = (tags == tag_id).any(axis=1)
        row = results["per_tag"][name]
        assert row["count"] == member.sum()
        want = reference(q[member].astype(float), q_hat[member].astype(float), AVA_SCALE.values, 5.0)
        for metric, value in want.items():
            np.testing.assert_allclose(row[metric], value, atol=1e-9, err_msg=f"{name}/{metric}")
    # Primary tag only ([n]); rare tags filtered; JSON-serialisable.
    results = evaluate_distributions(q, q_hat, tags=tags[:, 0], min_tag_count=10_000)
    assert results["per_tag"] == {}
    json.dumps(results)


def test_degenerate_rows_give_nan_correlations():
    q = np.full((4, 10), 0.1)
    row = evaluate_distributions(q, q)["overall"]
    assert np.isnan(row["srcc"]) and np.isnan(row["plcc"])
    assert row["mae"] == 0.0 and row["emd"] == 0.0 and row["accuracy"] == 1.0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"Expected 10 score bins. Received: y_true.shape=\(3, 7\)"):
        evaluate_distributions(np.ones((3, 7)), np.ones((3, 7)))
    with pytest.raises(ValueError, match=r"y_pred.shape=\(3, 9\)"):
        evaluate_distributions(np.ones((3, 10)), np.ones((3, 9)))


def test_format_table():
    rng = np.random.default_rng(4)
    q, q_hat = correlated_pair(rng, 100)
    results = evaluate_distributions(q, q_hat, tags=rng.integers(0, 2, size=100), tag_names={0: "floral", 1: "food"})
    table = format_table(results, title="demo")
    lines = table.splitlines()
    assert lines[0] == "demo"
    assert "Accuracy (%)" in lines[2] and "SRCC" in lines[2] and "EMD" in lines[2]
    assert [line.split("|")[1].strip() for line in lines[4:]] == ["overall", "floral", "food"]
    assert f"{100 * results['overall']['accuracy']:.2f}" in lines[4]
    variants = format_table({"mfb": results["overall"], "concat": {"accuracy": float("nan")}}, row_header="variant")
    assert "variant" in variants and "n/a" in variants


def test_evaluate_model_on_dataset_with_metadata():
    rng = np.random.default_rng(5)
    q, _ = correlated_pair(rng, 90)
    x = (q @ np.arange(1, 11)).astype("float32")[:, None]
    inputs = {"x": keras.Input((1,), name="x")}
    model = keras.Model(inputs, {"distribution": keras.layers.Dense(10, activation="softmax")(inputs["x"])})
    tags = rng.integers(-1, 2, size=90).astype("int32")
    ids = np.array([f"img{i}".encode() for i in range(90)])
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"x": x}, {"distribution": q}, {"image_id": ids, "tag": tags})
    ).batch(32)
    results, predictions = evaluate_model(model, dataset, scale=AVA_SCALE, tag_names=["a", "b"], return_predictions=True)
    expected = model.predict({"x": x}, verbose=0)["distribution"]
    np.testing.assert_allclose(predictions["y_pred"], expected, atol=1e-6)
    assert list(predictions["image_id"]) == list(ids)
    want = evaluate_distributions(q, expected, tags=tags, tag_names=["a", "b"])
    assert results["overall"]["count"] == 90 and set(results["per_tag"]) == {"a", "b"}
    for key in ("accuracy", "mae", "rmse", "emd", "plcc"):
        np.testing.assert_allclose(results["overall"][key], want["overall"][key], atol=1e-6)
    # Batches without metadata: no per-tag rows.
    plain = dataset.map(lambda f, l, m: (f, l))
    assert evaluate_model(model, plain)["per_tag"] == {}
