"""Review -> rating derivation (seed 000 §4.1) and the Eq. 7 consistency, against NumPy references."""

import dataclasses

import numpy as np
import pytest

from tfaesthetic import features
from tfaesthetic.records import reviews

# Hand-annotated photographic-rule (type I) comments: (text, #positive words, #negative words).
ANNOTATED = [
    ("The color is wonderful and the composition is great!", 2, 0),  # seed 000's type I example
    ("Nice light but the horizon is tilted and the sky is blown out", 1, 2),
    ("Sharp focus, good exposure", 2, 0),
    ("The focus is not sharp", 0, 1),  # negation flips "sharp"
    ("Composition is not bad", 1, 0),  # negation flips "bad"
    ("The background is distracting and the colours are dull and muddy", 0, 3),
    ("Interesting angle", 1, 0),
    ("The exposure is too bright", 0, 1),  # excess: "too bright" is a fault
    ("Great capture of the moment, superb timing and wonderful light", 3, 0),
    ("Too much contrast, but lovely tones", 1, 1),  # "much" passes the excess on to "contrast"
]


def numpy_levels(pos, neg, thresholds=(-1, 0, 1, 2)):
    """Five preference levels from the net word count; the two lowest are 'bad' (s_uv = 0)."""
    net = np.asarray(pos) - np.asarray(neg)
    levels = np.digitize(net, np.asarray(thresholds), right=False)  # number of thresholds <= net
    return levels, (levels >= 2).astype(np.int64)


def numpy_eq7(mean_scores, ratings, threshold=5.0):
    """Seed 000 Eq. 7 written from the paper: per image, the share of derived ratings that agree
    with b_v = [mean of the raw ratings > 5]; summed over images, divided by the number of images
    (images without a derived rating cannot enter the ratio)."""
    total, n = 0.0, 0
    for mean, s in zip(mean_scores, ratings):
        s = np.asarray([x for x in s if x >= 0])
        if s.size == 0:
            continue
        b = int(mean > threshold)
        total += np.sum(s == 1) / s.size if b == 1 else np.sum(s == 0) / s.size
        n += 1
    return total / n


def test_paper_examples_get_the_paper_types():
    assert reviews.classify("The color is wonderful and the composition is great!") == "I"
    assert reviews.classify("I like this photo!") == "II"
    assert reviews.classify("How handsome the boy is!") == "III"
    assert reviews.classify("Do you live in the steeple?") == "IV"
    # A question without "?" is still a question; an exclamation starting with "what" is not.
    assert reviews.classify("Where was this taken") == "IV"
    assert reviews.classify("What a handsome man.") == "III"


def test_derived_levels_and_ratings_match_numpy_reference():
    texts, pos, neg = zip(*ANNOTATED)
    expected_levels, expected_ratings = numpy_levels(pos, neg)
    derived = [reviews.derive(t, reviews.PAPER_RULES) for t in texts]
    assert [d.kind for d in derived] == ["I"] * len(texts)
    assert [(d.positive, d.negative) for d in derived] == list(zip(pos, neg))
    np.testing.assert_array_equal([d.level for d in derived], expected_levels)
    np.testing.assert_array_equal([d.rating for d in derived], expected_ratings)
    assert [d.text for d in derived] == list(texts)


def test_type_ii_is_rewritten_and_types_iii_iv_dropped():
    good = reviews.derive("I love this photo!")
    bad = reviews.derive("Not my cup of tea")
    assert (good.kind, good.text, good.level, good.rating) == ("II", reviews.GOOD_TEXT, 3, 1)
    assert (bad.kind, bad.text, bad.level, bad.rating) == ("II", reviews.BAD_TEXT, 1, 0)
    assert reviews.derive("meh").text == reviews.BAD_TEXT
    assert reviews.derive("Beautiful!").text == reviews.GOOD_TEXT
    for text, kind in [("How handsome the boy is!", "III"), ("Do you live in the steeple?", "IV"),
                       ("Taken in Paris last summer.", "IV"), ("12345", "IV")]:
        d = reviews.derive(text)
        assert (d.kind, d.rating, d.text) == (kind, features.NO_RATING, text)


def test_rules_are_parameters():
    strict = reviews.ReviewRules(level_thresholds=(0, 1, 2, 3), good_min_level=3)
    # net +1 -> level 2 under the strict rules, which is 'bad' from good_min_level 3.
    d = reviews.derive("Interesting angle", strict)
    assert (d.level, d.rating) == (2, 0)
    no_negation = reviews.ReviewRules(negation_window=0)
    assert reviews.derive("The focus is not sharp", no_negation).positive == 1
    with pytest.raises(ValueError, match="Received: level_thresholds="):
        reviews.ReviewRules(level_thresholds=(2, 1, 0, -1))
    extended = reviews.ReviewRules(attribute_words=reviews.ReviewRules().attribute_words | {"steeple"})
    assert reviews.classify("Do you live in the steeple?", extended) == "I"
    with pytest.raises(TypeError, match="Received: bytes"):
        reviews.derive(b"bytes")


def test_eq7_consistency_matches_numpy_reference():
    mean_scores = [6.2, 4.0, 5.0, 7.0, 3.0, 8.1]
    ratings = [[1, 1, 0], [0, 1], [0], [], [-1, 1], [1, -1, 1, 1]]
    # By hand: 2/3, 1/2, 1 (5.0 is not > 5), excluded, 0, 1 -> (2/3 + 1/2 + 1 + 0 + 1) / 5.
    expected = (2 / 3 + 1 / 2 + 1 + 0 + 1) / 5
    assert numpy_eq7(mean_scores, ratings) == pytest.approx(expected)
    assert reviews.consistency(mean_scores, ratings, 5.0) == pytest.approx(expected)
    rng = np.random.default_rng(0)
    means = rng.uniform(1, 10, size=50)
    random_ratings = [list(rng.integers(-1, 2, size=rng.integers(0, 6))) for _ in range(50)]
    assert reviews.consistency(means, random_ratings, 5.0) == pytest.approx(numpy_eq7(means, random_ratings))
    assert np.isnan(reviews.consistency([6.0], [[-1]], 5.0))
    with pytest.raises(ValueError, match="Received: len\\(mean_scores\\)=2"):
        reviews.consistency([1.0, 2.0], [[1]], 5.0)


def test_derive_ratings_fills_records_and_keeps_raw_text():
    texts = ["I love this photo!", "How handsome the boy is!", "Too dark and not sharp.", "Great composition"]
    records = [
        features.ImageRecord("a", votes=[0, 0, 0, 0, 0, 1, 2, 3, 2, 1], comments=[features.Comment(t) for t in texts[:2]]),
        features.ImageRecord("b", votes=[3, 4, 3, 1, 0, 0, 0, 0, 0, 0], comments=[features.Comment(t) for t in texts[2:]]),
    ]
    summary = reviews.derive_ratings(records)
    assert summary["types"] == {"I": 2, "II": 1, "III": 1, "IV": 0}
    assert summary["ratings"] == {"good": 2, "bad": 1, "dropped": 1}
    assert [c.rating for c in records[0].comments] == [1, features.NO_RATING]
    assert [c.text for r in records for c in r.comments] == texts  # raw text kept
    assert [c.sentiment for c in records[1].comments] == [0, 3]
    # Image a: mean > 5, ratings [1] -> 1; image b: mean < 5, ratings [0, 1] -> 1/2.
    means = [reviews.mean_score(r.votes, features.AVA_SCALE) for r in records]
    assert reviews.records_consistency(records, features.AVA_SCALE) == pytest.approx(
        numpy_eq7(means, [[c.rating for c in r.comments] for r in records])
    )
    assert reviews.records_consistency(records, features.AVA_SCALE) == pytest.approx(0.75)
    rewritten = [dataclasses.replace(r, comments=[features.Comment(c.text) for c in r.comments]) for r in records]
    reviews.derive_ratings(rewritten, rewrite=True)
    assert rewritten[0].comments[0].text == reviews.GOOD_TEXT
    with pytest.raises(ValueError, match="Received: votes.shape=\\(7,\\)"):
        reviews.mean_score([1] * 7, features.AVA_SCALE)
