"""Normalisation, tokenisation and the vocabulary (SPEC §2.2)."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tfaesthetic import features, text

STRINGS = [
    "Great COMPOSITION, lovely light!!",
    "Ｆｕｌｌ-width ＴＥＸＴ",  # NFKC folds full-width forms
    "Straße ﬁne",  # case folding (ß -> ss) and the ﬁ ligature (NFKC)
    "don't   over-process…",
    "",
    "12345 ???",
    "🙂🙂",
]
BAD_BYTES = [b"caf\xe9 nice", b"\xff\xfe\x00light", b"\xc3"]


def test_normalize_nfkc_case_fold_and_utf8_repair():
    out = [t.decode("utf-8") for t in text.normalize(STRINGS[:3] + BAD_BYTES).numpy()]
    assert out[0] == "great composition, lovely light!!"
    assert out[1] == "full-width text"
    assert out[2] == "strasse fine"
    assert out[3] == "caf\ufffd nice"
    assert out[5] == "\ufffd"


def test_split_words_strips_punctuation_and_non_letters():
    words = text.split_words(text.normalize(STRINGS + BAD_BYTES)).to_list()
    words = [[w.decode("utf-8") for w in row] for row in words]
    assert words[0] == ["great", "composition", "lovely", "light"]
    assert words[3] == ["dont", "over", "process"]
    assert words[4] == []
    assert words[5] == ["12345"]
    assert words[6] == []
    assert words[7] == ["caf", "nice"]
    assert words[9] == []


def test_vocabulary_build_counts_min_count_max_size():
    vocab = text.Vocabulary.build(["b", "a", "c", "a", "b", "a", "d", b"c"], min_count=2)
    assert list(vocab.words) == ["a", "b", "c"]  # by count, ties by word
    assert vocab.size == 3 + features.NUM_RESERVED_TOKENS
    assert list(text.Vocabulary.build(["b", "a", "a", "c"], max_size=2).words) == ["a", "b"]
    with pytest.raises(ValueError, match="min_count=0"):
        text.Vocabulary.build([], min_count=0)


def test_vocabulary_ids_reserve_pad_and_oov(tmp_path):
    vocab = text.Vocabulary(["light", "great"])
    ids = text.tokenize(["great light nope", ""], vocab).to_list()
    assert ids == [[3, 2, features.OOV_ID], []]
    path = str(tmp_path / "vocab.txt")
    vocab.write(path)
    with open(path, encoding="utf-8") as f:
        assert f.read() == "light\ngreat\n"
    assert list(text.Vocabulary.from_file(path).words) == ["light", "great"]


def test_vocabulary_rejects_bad_words():
    with pytest.raises(ValueError, match="duplicates"):
        text.Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="'a b'"):
        text.Vocabulary(["a b"])


def test_empty_vocabulary_maps_everything_to_oov():
    assert text.tokenize(["any words"], text.Vocabulary([])).to_list() == [[1, 1]]


def _vocab():
    words = text.split_words(text.normalize(STRINGS + BAD_BYTES)).flat_values.numpy()
    return text.Vocabulary.build(words)


def test_tokenize_identical_eager_and_in_serving_signature():
    vocab = _vocab()
    inputs = STRINGS + BAD_BYTES
    # Writer path: eager, Python strings/bytes.
    eager = text.tokenize(inputs, vocab).to_list()

    # Serving path: a tf.function with a string input signature.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(texts):
        return text.pad_tokens(text.tokenize(texts, vocab), 16)

    served = serve(tf.constant([s.encode("utf-8") if isinstance(s, str) else s for s in inputs])).numpy()
    for row, dense in zip(eager, served):
        assert list(dense[: len(row)]) == row
        assert all(v == features.PAD_ID for v in dense[len(row) :])
    assert eager[0] and all(i >= features.NUM_RESERVED_TOKENS for i in eager[0])

    # Pipeline path: inside Dataset.map.
    ds = tf.data.Dataset.from_tensor_slices(tf.constant([s.encode("utf-8") if isinstance(s, str) else s for s in inputs]))
    mapped = [r.numpy().tolist() for r in ds.map(lambda s: text.tokenize(tf.reshape(s, [1]), vocab)[0])]
    assert mapped == eager


def test_pad_tokens_truncates_and_pads():
    ragged = tf.ragged.constant([[5, 6, 7, 8], [], [9]], dtype=tf.int64)
    dense = text.pad_tokens(ragged, 3)
    assert dense.dtype == tf.int32
    assert dense.numpy().tolist() == [[5, 6, 7], [0, 0, 0], [9, 0, 0]]


@pytest.mark.slow
def test_tokenizer_survives_saved_model_in_fresh_process(tmp_path):
    vocab = _vocab()
    module = tf.Module()
    module.vocabulary = vocab
    module.serve = tf.function(
        lambda t: text.pad_tokens(text.tokenize(t, module.vocabulary), 8),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"))
    expected = module.serve(tf.constant([b"great light \xff", b""])).numpy().tolist()
    script = (
        "import tensorflow as tf, tensorflow_text;"
        f"m = tf.saved_model.load({str(tmp_path / 'sm')!r});"
        "print(m.serve(tf.constant([b'great light \\xff', b''])).numpy().tolist())"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(expected)
