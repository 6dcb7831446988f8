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


# --------------------------------------------------------------------------------------
# Real-comment rules (ReviewRules defaults): contrast, critique, mixed and neutral comments.
# --------------------------------------------------------------------------------------


def test_contrast_weighs_what_follows_but():
    # Before "but" a word counts contrast_before_weight (0.5), after it 1.
    text = "Nice idea, but the horizon is tilted and the sky is blown out."
    assert reviews.weighted_sentiment(text) == (0.5, 2.0)
    d = reviews.derive(text)  # mixed: net -1.5 <= mixed_bad_max_net
    assert (d.kind, d.rating) == ("I", 0)
    # Reversed, the praise after "though" wins: 0.5 negative before, 2 positive after.
    text = "The crop is a little awkward, though the light and colours are wonderful and lovely."
    assert reviews.weighted_sentiment(text) == (2.0, 0.5)
    # Without the contrast rule every word counts 1.
    flat = reviews.ReviewRules(contrast_before_weight=1.0)
    assert reviews.weighted_sentiment("Nice idea, but the horizon is tilted and the sky is blown out.", flat) == (1.0, 2.0)


def test_negation_flips_polarity_within_its_window():
    assert reviews.weighted_sentiment("The focus isn't sharp enough.") == (0.0, 1.0)
    assert reviews.weighted_sentiment("The colours are not bad at all.") == (1.0, 0.0)
    assert reviews.derive("The exposure is not great.").rating == 0
    # Outside the window (3 words) the negation no longer applies.
    assert reviews.weighted_sentiment("Not what I expected from the composition, lovely.") == (1.0, 0.0)


def test_critique_without_sentiment_words_counts_negative():
    text = "The composition would have been better with a tighter crop."
    assert reviews.count_sentiment(text) == (1, 0)  # only "better", which is no praise here
    assert reviews.weighted_sentiment(text) == (0.0, 1.0)  # one critique pattern, its words not counted
    assert reviews.derive(text).rating == 0
    assert reviews.weighted_sentiment("The subject needs more light.") == (0.0, 1.0)
    off = reviews.ReviewRules(critique_weight=0.0)
    assert reviews.derive(text, off).rating == 1  # then "better" reads as praise
    assert reviews.derive("Taken from the bridge; I'd crop the left side.").rating == 0


def test_mixed_comments_are_rated_only_when_decisive():
    # 1 positive, 1 negative: net 0 is inside (mixed_bad_max_net, mixed_good_min_net) -> no rating.
    undecided = reviews.derive("Great colours, but the focus is soft.")
    assert (undecided.positive, undecided.negative) == (0.5, 1.0)
    assert (undecided.kind, undecided.rating) == ("I", features.NO_RATING)
    # Clear praise with one small fault: net 3 - 0.5 = 2.5 -> good.
    praised = reviews.derive("A bit soft perhaps, but great colours, beautiful light and a wonderful mood.")
    assert (praised.positive, praised.negative) == (3.0, 0.5)
    assert praised.rating == 1
    # Pure comments keep the level rule: one positive word is good, one negative word bad.
    assert reviews.derive("Lovely composition.").rating == 1
    assert reviews.derive("The background is distracting.").rating == 0
    # A description with no sentiment says nothing about the vote.
    assert reviews.derive("Shot with a long lens at dusk, the subject on the left.").rating == features.NO_RATING
    assert reviews.derive("Shot with a long lens at dusk.", reviews.PAPER_RULES).rating == 1
    with pytest.raises(ValueError, match="Received: mixed_good_min_net=1.0, mixed_bad_max_net=2.0"):
        reviews.ReviewRules(mixed_good_min_net=1.0, mixed_bad_max_net=2.0)


def test_review_check_matches_numpy_reference():
    texts = [
        ["Great composition and wonderful light.", "Lovely colours."],  # good, good
        ["The background is distracting.", "Shot at dusk."],  # bad, unrated
        ["Great colours, but the focus is soft."],  # unrated only
        ["Beautiful light, superb mood!"],  # good
    ]
    votes = [[0, 0, 0, 0, 1, 2, 5, 2, 0, 0], [0, 0, 3, 5, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 5, 5, 1, 0, 0, 0],
             [0, 0, 0, 0, 0, 1, 2, 3, 1, 0]]
    records = [features.ImageRecord(str(i), votes=v, comments=[features.Comment(t) for t in ts])
               for i, (v, ts) in enumerate(zip(votes, texts))]
    reviews.derive_ratings(records)
    check = reviews.review_check(records, features.AVA_SCALE)
    means = np.array([np.dot(v, np.arange(1, 11)) / np.sum(v) for v in votes])
    ratings = [[c.rating for c in r.comments] for r in records]
    assert ratings == [[1, 1], [0, -1], [-1], [1]]
    above = means > 5
    assert check["consistency"]["derived"] == pytest.approx(numpy_eq7(means, ratings))
    assert check["consistency"]["all_good"] == pytest.approx(np.mean(above))
    assert check["consistency"]["all_good_same_images"] == pytest.approx(np.mean(above[[0, 1, 3]]))
    share = np.array([1.0, 0.0, 1.0])
    ranks = lambda x: np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)  # noqa: E731
    expected = np.corrcoef(
        ranks(means[[0, 1, 3]]), np.array([1.5, 0.0, 1.5])  # average ranks of the tied shares
    )[0, 1]
    assert check["share_good_srcc"]["derived"] == pytest.approx(expected)
    assert share.shape == (3,)
    assert (check["images"], check["images_rated"]) == (4, 3)
    assert reviews.review_check([features.ImageRecord("x", votes=None)], features.AVA_SCALE) is None
