"""SentimentLexicon (prior word polarity of the language stream) against a NumPy reference of its equations."""

import keras
import numpy as np
import pytest

from tests.test_case import TestCase
from tfaesthetic import features
from tfaesthetic.layers.sentiment_lexicon import COLUMNS, NUM_FEATURES, SentimentLexicon
from tfaesthetic.records import reviews

# The layer has no trainable weights: run_layer_test's fit step says so, as expected.
pytestmark = pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")

WORDS = ["the", "sharp", "not", "blurry", "too", "dark", "but", "great", "nice", "isnt", "boring", "colours"]
ID = {w: i + features.NUM_RESERVED_TOKENS for i, w in enumerate(WORDS)}


def ids(sentence, length=10):
    row = [ID.get(w, features.OOV_ID) for w in sentence.split()]
    return row + [0] * (length - len(row))


TOKENS = np.array(
    [
        ids("the colours are great"),             # "are": OOV
        ids("not sharp but nice"),                # negation, contrast
        ids("too dark the colours isnt boring"),  # excess; a negated negative word
        ids(""),                                  # no comment
        ids("great nice the sharp but too dark but blurry not"),  # two contrasts, a trailing negation
    ],
    dtype="int32",
)


def numpy_lexicon(tokens, table, window=3, scalar=-0.74, excess=0.375, contrast=0.5, alpha=15 / 16):
    """The layer's docstring, one token at a time."""
    out = []
    for row in tokens:
        a, g, e, c = (table[row, k] for k in range(4))
        values, weights, real = [], [], []
        for i in range(len(row)):
            v = a[i]
            if i >= 1 and e[i - 1]:
                v = -excess
            if any(g[j] for j in range(max(0, i - window), i)):
                v = scalar * v
            w = contrast if any(c[j] for j in range(i + 1, len(row))) else 1.0
            values.append(v), weights.append(w), real.append(float(row[i] != 0))
        v, w, r = map(np.array, (values, weights, real))
        n = max(r.sum(), 1.0)
        s = np.sum(r * w * v)
        vr = v[r > 0]
        out.append([
            s / np.sqrt(s * s + alpha), s / np.sqrt(n),
            np.sum(r * w * (v > 0)) / n, np.sum(r * w * (v < 0)) / n,
            vr.max() if len(vr) else 0.0, vr.min() if len(vr) else 0.0,
        ])
    return np.array(out)


def table():
    return reviews.lexicon_table(WORDS)


def filled_layer(**kwargs):
    layer = SentimentLexicon(vocab_size=len(WORDS) + features.NUM_RESERVED_TOKENS, **kwargs)
    layer.set_table(table())
    return layer


class SentimentLexiconTest(TestCase):
    def test_layer_basics(self):
        # No trainable weights (the frozen table is the one non-trainable weight).
        self.run_layer_test(
            SentimentLexicon, {"vocab_size": len(WORDS) + 2}, TOKENS, expected_output_shape=(5, NUM_FEATURES),
            expected_num_trainable_weights=0, expected_num_non_trainable_weights=1,
        )

    def test_matches_numpy_reference(self):
        t = table()
        self.assertAllClose(filled_layer()(TOKENS), numpy_lexicon(TOKENS, t), atol=1e-6)
        options = dict(negation_window=1, negation_scalar=-1.0, excess_valence=0.5, contrast_weight=1.0, alpha=1.0)
        expected = numpy_lexicon(TOKENS, t, window=1, scalar=-1.0, excess=0.5, contrast=1.0, alpha=1.0)
        self.assertAllClose(filled_layer(**options)(TOKENS), expected, atol=1e-6)

    def test_the_rules_on_hand_written_comments(self):
        layer = filled_layer()
        out = np.asarray(layer(np.array([ids("sharp"), ids("not sharp"), ids("dark"), ids("too dark"),
                                         ids("boring but nice"), ids("nice but boring")], "int32")))
        compound = out[:, 0]
        self.assertGreater(compound[0], 0)  # "sharp" is praise in photo critique
        self.assertLess(compound[1], 0)     # "not sharp" is a fault
        self.assertEqual(compound[2], 0)    # "dark" is a neutral description ...
        self.assertLess(compound[3], 0)     # ... "too dark" a fault
        self.assertGreater(compound[4], 0)  # what follows "but" is what the critic means
        self.assertLess(compound[5], 0)
        self.assertAllClose(layer(np.zeros((2, 10), "int32")), np.zeros((2, NUM_FEATURES)))

    def test_lexicon_table_from_the_derivation_lists(self):
        t = table()
        self.assertEqual(t.shape, (len(WORDS) + 2, len(COLUMNS)))
        self.assertAllClose(t[:2], np.zeros((2, 4)))  # padding and OOV
        row = {w: t[ID[w]] for w in WORDS}
        self.assertEqual(tuple(row["not"]), (0.0, 1.0, 0.0, 0.0))
        self.assertEqual(tuple(row["isnt"]), (0.0, 1.0, 0.0, 0.0))  # the tokeniser drops the apostrophe
        self.assertEqual(tuple(row["too"]), (0.0, 0.0, 1.0, 0.0))
        self.assertEqual(tuple(row["but"]), (0.0, 0.0, 0.0, 1.0))
        self.assertAlmostEqual(float(row["sharp"][0]), 1.5 / 4)  # photographic override
        self.assertEqual(float(row["dark"][0]), 0.0)  # neutral in critique (override)
        self.assertLess(float(row["boring"][0]), 0)
        self.assertGreater(float(row["great"][0]), 0.5)  # VADER: 3.1
        self.assertEqual(float(row["the"][0]), 0.0)

    def test_table_survives_keras_saving(self):
        inputs = keras.Input((None,), dtype="int32")
        model = keras.Model(inputs, filled_layer()(inputs))
        restored = self.run_model_saving_test(model, TOKENS)
        self.assertAllClose(restored.layers[-1].table, table())

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="Received: vocab_size=1"):
            SentimentLexicon(vocab_size=1)
        with pytest.raises(ValueError, match="Received: negation_window=-1"):
            SentimentLexicon(vocab_size=4, negation_window=-1)
        with pytest.raises(ValueError, match="Received: alpha=0"):
            SentimentLexicon(vocab_size=4, alpha=0)
        with pytest.raises(ValueError, match=r"Received: shape \(3, 4\)"):
            SentimentLexicon(vocab_size=4).set_table(np.zeros((3, 4), "float32"))
