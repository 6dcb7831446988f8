"""Review -> preference level -> user-specific rating s_uv (seed 000 §4.1, SPEC §2.4).

The paper recovers the missing user-specific ratings of AVA from the users' text
reviews in four steps:

1. *Review classification* into four types: I) comments based on photographic
   rules ("The color is wonderful and the composition is great!"), II) subjective
   feelings ("I like this photo!"), III) ambiguous comments not about aesthetic
   quality ("How handsome the boy is!"), IV) equivocal messages ("Do you live in
   the steeple?").
2. *Review cleaning*: type II is rewritten as "The photo is good" (resp. "bad"),
   types III and IV are removed.
3. *Sentiment counting*: positive and negative words are counted with a sentiment
   toolkit, and the review is put on one of five preference levels.
4. *Rating generation*: s_uv = 0 for the two lowest levels, 1 for the other three.

The paper used CoreNLP (parser + open information extraction) for step 1 and
CoreNLP's sentiment tool for step 3. Neither is available offline here, so this
module uses transparent rules, every word list and threshold a named field of
`ReviewRules`:

* A comment is **type I** when it names an aesthetic attribute (`attribute_words`,
  `attribute_phrases`: composition, colour, light, focus, exposure, sharpness,
  angle, crop, ...).
* Otherwise it is **type IV** when every sentence is a question (ends with "?",
  or starts with a word of `question_starts` and is neither an exclamation nor
  carries sentiment) -- an equivocal message.
* Otherwise it is **type II** when it expresses a feeling about the photo: it
  matches one of `feeling_patterns` (first person "I like/love/hate ...", "love
  it", "well done", "my favourite", ...), or it carries sentiment and refers to the
  photo (`photo_words`: photo, picture, image, capture, ...), or it is a short
  exclamation (at most `short_feeling_max_words` words) made only of sentiment
  words and `filler_words` ("Beautiful!", "wow, stunning", "meh").
* Otherwise it is **type III** when it carries sentiment (about something other
  than the photo: "How handsome the boy is!") and **type IV** when it carries none
  ("Taken in Paris last summer.").

Sentiment words are counted with the VADER lexicon (`vaderSentiment` ships it
offline): a word is positive when its valence is >= `min_valence`, negative when
<= -`min_valence`. `photographic_polarity` overrides/extends VADER for words whose
meaning in photo critique differs from everyday English ("soft", "sharp",
"blown", "busy", ...). A word within `negation_window` words after a negation
(VADER's NEGATE list: "not", "isn't", "never", ...) has its polarity flipped ("not
sharp" is negative, "not bad" positive); a word after an excess word ("too
dark", "overly saturated") counts as negative. The net count `pos - neg` gives the
level: `level = #{t in level_thresholds : net >= t}`, i.e. with the default
thresholds (-1, 0, 1, 2): net <= -2 -> 0, -1 -> 1, 0 -> 2, 1 -> 3, >= 2 -> 4.
s_uv = 0 for levels below `good_min_level` (2), 1 otherwise.

Reference:
    Wang et al., "Personalized image aesthetic assessment with reviews and
    collaborative filtering", IJCAI 2018, §4.1 and Eq. 7.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from typing import Iterable, Optional, Sequence

import numpy as np

from tfaesthetic import features

TYPE_RULE = "I"  # photographic rule
TYPE_FEELING = "II"  # subjective feeling
TYPE_AMBIGUOUS = "III"  # not about aesthetic quality
TYPE_EQUIVOCAL = "IV"  # equivocal message / unrelated question
KINDS = (TYPE_RULE, TYPE_FEELING, TYPE_AMBIGUOUS, TYPE_EQUIVOCAL)

GOOD_TEXT = "The photo is good"
BAD_TEXT = "The photo is bad"

_ATTRIBUTE_WORDS = (
    # composition / framing
    "composition", "composed", "compose", "framing", "framed", "frame", "crop",
    "cropped", "cropping", "crops", "angle", "angles", "perspective", "pov",
    "viewpoint", "horizon", "thirds", "symmetry", "symmetrical", "balance",
    "lines", "leading", "placement", "negative", "space", "background",
    "foreground", "subject", "layout", "diagonal", "centered", "centred",
    # light / exposure / tone
    "light", "lighting", "lit", "lights", "shadow", "shadows", "highlights",
    "highlight", "exposure", "exposed", "overexposed", "underexposed",
    "contrast", "tone", "tones", "tonal", "brightness", "bright", "dark",
    "darker", "silhouette", "backlit", "backlighting", "flash", "hdr",
    "blown", "dynamic", "range",
    # colour
    "color", "colors", "colour", "colours", "colored", "coloured", "colorful",
    "colourful", "saturation", "saturated", "desaturated", "hue", "hues",
    "palette", "monochrome", "b&w", "bw", "sepia", "toning", "vivid",
    "white-balance", "wb",
    # focus / sharpness / technique
    "focus", "focused", "focussed", "focusing", "sharp", "sharpness",
    "sharper", "sharpening", "blur", "blurry", "blurred", "bokeh", "dof",
    "depth", "field", "noise", "noisy", "grain", "grainy", "detail",
    "details", "detailed", "texture", "textures", "clarity", "crisp", "soft",
    "motion", "shutter", "aperture", "iso", "lens", "macro", "tilt", "tilted",
    "level", "distortion", "vignette", "vignetting",
    # processing / the shot itself
    "shot", "shots", "processing", "processed", "post-processing", "pp",
    "editing", "edited", "edit", "photoshop", "photoshopped", "filter",
    "technique", "technical", "execution", "capture", "captured", "timing",
    "moment", "mood", "atmosphere", "presentation", "border",
)

_FEELING_PATTERNS = (
    r"\bi\s+(?:really\s+|just\s+|absolutely\s+|truly\s+|do\s+|don'?t\s+|do\s+not\s+|"
    r"didn'?t\s+|did\s+not\s+|would\s+|'d\s+)?(?:like|love|dislike|hate|enjoy|adore|"
    r"prefer|admire)\b",
    r"\b(?:love|like|hate|dig)\s+(?:it|this|that)\b",
    r"\bmy\s+(?:favou?rite|top|pick)\b",
    r"\b(?:well\s+done|good\s+job|great\s+job|nice\s+job|nice\s+one|good\s+one|"
    r"great\s+one|nice\s+work|great\s+work|good\s+work|bravo|congrat\w*|kudos)\b",
    r"\bi'?m\s+(?:a\s+)?(?:fan|impressed|moved|sold|convinced)\b",
)

# Feelings that are negative whatever their words count to ("not my cup of tea").
_NEGATIVE_FEELING_PATTERNS = (
    r"\bnot\s+(?:really\s+)?my\s+(?:cup\s+of\s+tea|thing|style|taste)\b",
    r"\bi'?m\s+not\s+(?:really\s+)?(?:a\s+)?(?:fan|impressed|moved|sold|convinced|feeling)\b",
    r"\bi'?m\s+(?:a\s+bit\s+)?bored\b",
    r"\b(?:doesn'?t|does\s+not|didn'?t|did\s+not)\s+(?:really\s+)?(?:do\s+(?:it|much)|work|grab|move)"
    r"(?:\s+(?:for|with))?\s+me\b",
)

_PHOTO_WORDS = (
    "photo", "photos", "photograph", "photography", "picture", "pictures",
    "pic", "pics", "image", "images", "entry", "capture", "work", "shot",
    "this", "it", "one", "piece", "job",
)

_FILLER_WORDS = (
    "a", "an", "the", "so", "very", "really", "just", "quite", "too", "and",
    "oh", "my", "is", "it", "this", "that", "what", "how", "simply", "truly",
    "absolutely", "totally", "pretty", "rather", "indeed", "nice", "wow",
    "hmm", "hm", "ok", "okay", "yes", "no", "lol",
)

_QUESTION_STARTS = (
    "who", "what", "where", "when", "why", "how", "which", "whose", "do",
    "does", "did", "is", "are", "was", "were", "can", "could", "would",
    "will", "have", "has", "had", "should", "shall",
)

# Photo-critique polarity where VADER is silent or means something else.
_PHOTOGRAPHIC_POLARITY = {
    "sharp": 1.5, "crisp": 1.5, "vivid": 1.5, "balanced": 1.2, "clean": 1.2,
    "striking": 1.8, "dramatic": 1.2, "well-composed": 2.0, "well-exposed": 2.0,
    "nicely": 1.5, "excellent": 3.0, "favourite": 2.0, "colourful": 1.2,
    "colorful": 1.2, "superb": 3.0, "gorgeous": 3.0, "wonderful": 2.7,
    "blurry": -1.5, "blurred": -1.2, "soft": -0.8, "grainy": -1.2,
    "noisy": -1.2, "overexposed": -1.8, "underexposed": -1.8, "blown": -1.5,
    "washed": -1.2, "flat": -1.2, "muddy": -1.5, "cluttered": -1.5,
    "busy": -1.0, "distracting": -1.5, "tilted": -1.2, "crooked": -1.5,
    "oversaturated": -1.5, "overprocessed": -1.5, "overdone": -1.5,
    "lacks": -1.0, "lacking": -1.0, "snapshot": -1.0, "meh": -1.5,
    "harsh": -1.5, "dull": -1.5, "boring": -1.5, "bland": -1.5,
    "unfocused": -1.5, "out-of-focus": -1.5, "cut": -0.5, "awkward": -1.5,
    # words VADER scores but that are neutral descriptions in photo critique
    "light": 0.0, "dark": 0.0, "shot": 0.0, "capture": 0.0, "focus": 0.0,
    "well": 0.0, "yes": 0.0, "no": 0.0, "please": 0.0,
    "huge": 0.0, "big": 0.0, "kind": 0.0, "pretty": 0.0, "sure": 0.0,
    "lol": 0.0, "thanks": 0.0, "thank": 0.0,
}

_EXCESS_WORDS = ("too", "overly", "excessively")

_CONTRAST_WORDS = ("but", "however", "though", "although", "yet", "except")

# Critique with no sentiment word: a suggestion of what would have made it better.
_CRITIQUE_PATTERNS = (
    r"\b(?:would|could|might)\s+(?:have\s+)?(?:been|be|look)\s+(?:\w+\s+)?(?:better|stronger|improved|nicer)\b",
    r"\b(?:needs?|needed)\s+(?:a\s+(?:bit|little)\s+)?(?:more|less|to\s+be)\b",
    r"\bi'?d\s+(?:have\s+)?(?:crop\w*|move\w*|tighten\w*|remove\w*|suggest\w*)\b",
    r"\b(?:could|should)\s+(?:have\s+)?(?:used|use|been\s+cropped|crop\w*)\b",
    r"\bnot\s+(?:much|enough)\b",
)

# "like" is a verb of feeling only in these contexts; elsewhere it is a preposition.
_LIKE_SUBJECTS = ("i", "we", "really", "just", "do", "would", "'d", "d", "definitely", "also")


@dataclasses.dataclass(frozen=True)
class ReviewRules:
    """Every word list and threshold of the review -> rating derivation.

    Attributes:
        attribute_words: single words naming an aesthetic attribute; any of them
            makes a comment type I (seed 000 §4.1 lists "shot, composition,
            focus, light, angle, color, exposure").
        attribute_phrases: multi-word attributes ("white balance", "depth of
            field", "rule of thirds"), matched on the lower-cased text.
        feeling_patterns: regular expressions (lower-cased text) of first-person
            feelings; a match makes a non-type-I comment type II, rewritten by
            its sentiment count (ties broken by VADER's compound score).
        negative_feeling_patterns: feelings that are type II and always
            rewritten "The photo is bad" ("not my cup of tea").
        photo_words: words referring to the photo itself; a comment with
            sentiment and one of these is a feeling about the photo (type II).
        filler_words: words allowed in a short exclamation besides sentiment
            words ("So beautiful!").
        short_feeling_max_words: maximum number of words of such an exclamation.
        question_starts: first words that make a sentence a question even
            without "?".
        min_valence: absolute VADER valence from which a word counts as
            positive/negative.
        photographic_polarity: valence overrides (word -> valence) applied on
            top of the VADER lexicon; 0.0 makes a word neutral.
        negation_window: how many following words a negation flips.
        excess_words: words after which the next word counts as negative
            ("too dark"; "much"/"many" pass it on: "too much contrast").
        level_thresholds: four increasing thresholds on the net count
            `pos - neg`; level = number of thresholds <= net (0..4).
        good_min_level: s_uv = 1 from this level up (paper: the two lowest of
            the five levels are 'bad', so 2).
        rewrite_feelings: whether type II comments are counted on the rewritten
            "The photo is good/bad" (paper) rather than on their own words.
        contrast_words: words that turn a comment ("nice idea, but the horizon
            is tilted"): the sentiment words before the last of them count
            `contrast_before_weight` each, those after it count 1.
        contrast_before_weight: weight of the words before the contrast (0.5:
            what follows "but" is what the critic means; 1 disables the rule).
        critique_patterns: regular expressions (lower-cased text) of critique
            phrased without sentiment words ("would have been better", "needs
            more", "I'd crop"); each match counts `critique_weight` negative words.
        critique_weight: negative words counted per critique match (0 disables).
        mixed_good_min_net: a type I comment with both positive and negative
            words is rated good only when its weighted net `pos - neg` is at least
            this, ...
        mixed_bad_max_net: ... and bad only when its net is at most this; in
            between it is too mixed to call and gets no rating (real critiques
            praise and fault in one breath; the paper's CoreNLP tool is not
            available to weigh them). Both None: mixed comments are rated by
            their level like any other.
        rate_without_sentiment: rate a type I comment with no sentiment word at
            all (net 0, level 2: "good"); False gives it no rating, since a
            neutral description says nothing about the vote.
    """

    attribute_words: frozenset = frozenset(_ATTRIBUTE_WORDS)
    attribute_phrases: tuple = (
        "white balance", "depth of field", "rule of thirds", "point of view",
        "leading lines", "negative space", "post processing", "out of focus",
        "shutter speed", "long exposure", "black and white",
    )
    feeling_patterns: tuple = _FEELING_PATTERNS
    negative_feeling_patterns: tuple = _NEGATIVE_FEELING_PATTERNS
    photo_words: frozenset = frozenset(_PHOTO_WORDS)
    filler_words: frozenset = frozenset(_FILLER_WORDS)
    short_feeling_max_words: int = 4
    question_starts: frozenset = frozenset(_QUESTION_STARTS)
    min_valence: float = 0.5
    photographic_polarity: tuple = tuple(sorted(_PHOTOGRAPHIC_POLARITY.items()))
    negation_window: int = 3
    excess_words: frozenset = frozenset(_EXCESS_WORDS)
    level_thresholds: tuple = (-1, 0, 1, 2)
    good_min_level: int = 2
    rewrite_feelings: bool = True
    contrast_words: frozenset = frozenset(_CONTRAST_WORDS)
    contrast_before_weight: float = 0.5
    critique_patterns: tuple = _CRITIQUE_PATTERNS
    critique_weight: float = 1.0
    mixed_good_min_net: Optional[float] = 2.5
    mixed_bad_max_net: Optional[float] = -1.5
    rate_without_sentiment: bool = False

    def __post_init__(self):
        thresholds = tuple(self.level_thresholds)
        if len(thresholds) != 4 or list(thresholds) != sorted(thresholds):
            raise ValueError(
                "level_thresholds must be 4 increasing numbers (5 levels). "
                f"Received: level_thresholds={self.level_thresholds!r}"
            )
        if not 0 <= self.good_min_level <= 4:
            raise ValueError(f"good_min_level must be in 0..4. Received: good_min_level={self.good_min_level}")
        band = (self.mixed_good_min_net, self.mixed_bad_max_net)
        if (band[0] is None) != (band[1] is None) or (band[0] is not None and band[1] >= band[0]):
            raise ValueError(
                "mixed_bad_max_net must be below mixed_good_min_net (or both None: the level rule). "
                f"Received: mixed_good_min_net={band[0]!r}, mixed_bad_max_net={band[1]!r}"
            )


#: The rules before the real-comment additions: every sentiment word counts 1, no
#: critique patterns, mixed and sentiment-free type I comments rated by their level
#: (net >= 0 is "good"). `ReviewRules()` (the default) is the real-comment rule set.
PAPER_RULES = ReviewRules(
    contrast_before_weight=1.0, critique_weight=0.0, mixed_good_min_net=None, mixed_bad_max_net=None,
    rate_without_sentiment=True,
)


@dataclasses.dataclass(frozen=True)
class Derivation:
    """The result of `derive` for one comment.

    Attributes:
        kind: review type "I", "II", "III" or "IV".
        level: preference level 0..4 (computed for every type, informative only
            for dropped ones).
        rating: s_uv in {0, 1}, or `features.NO_RATING` (-1) for types III/IV
            and for type I comments too mixed to call or without sentiment
            (`ReviewRules.mixed_good_min_net`, `rate_without_sentiment`).
        text: the cleaned review: the original text (I), "The photo is
            good/bad" (II), or the original text (III/IV, dropped).
        positive: positive words counted (type I: weighted, `weighted_sentiment`).
        negative: negative words counted (type I: weighted, with critiques).
    """

    kind: str
    level: int
    rating: int
    text: str
    positive: int = 0
    negative: int = 0


_WORD_RE = re.compile(r"[^\W\d_](?:[\w'&-]*[^\W_])?|[^\W\d_]")
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*|[.!?]+")


@functools.lru_cache(maxsize=None)
def _vader_lexicon() -> dict:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return dict(SentimentIntensityAnalyzer().lexicon)


@functools.lru_cache(maxsize=None)
def _negations() -> frozenset:
    from vaderSentiment.vaderSentiment import NEGATE

    return frozenset(NEGATE) | {"no", "non", "hardly", "barely", "lack", "lacks", "lacking"}


@functools.lru_cache(maxsize=8)
def _compiled(rules: ReviewRules):
    lexicon = _vader_lexicon()
    overrides = dict(rules.photographic_polarity)
    feelings = [re.compile(p) for p in rules.feeling_patterns]
    negative = [re.compile(p) for p in rules.negative_feeling_patterns]
    return lexicon, overrides, feelings, negative


def words(text: str) -> list:
    """Lower-cased words (letters, inner apostrophes/hyphens) of `text`."""
    return [w.replace("\u2019", "'") for w in _WORD_RE.findall(text.lower().replace("\u2019", "'"))]


def _valence(word: str, prev: Optional[str], lexicon: dict, overrides: dict) -> float:
    if word == "like" and prev not in _LIKE_SUBJECTS:
        return 0.0
    if word in overrides:
        return overrides[word]
    return float(lexicon.get(word, 0.0))


def count_sentiment(text: str, rules: ReviewRules = ReviewRules()) -> tuple:
    """Counts positive and negative words of `text`.

    Args:
        text: a comment.
        rules: the `ReviewRules` (lexicon threshold, negation, excess words).

    Returns:
        `(positive, negative)` word counts.
    """
    positive, negative = _count_words(words(text), rules)
    return positive, negative


def weighted_sentiment(text: str, rules: ReviewRules = ReviewRules()) -> tuple:
    """Positive and negative word counts with the contrast and critique rules.

    The words before the last of `rules.contrast_words` count
    `rules.contrast_before_weight` each ("Nice idea, but it is too dark":
    0.5 positive, 1 negative); each match of `rules.critique_patterns` adds
    `rules.critique_weight` negative words, and the words of the match are not
    counted otherwise ("The crop would have been better tighter": 0 positive,
    1 negative).

    Returns:
        `(positive, negative)` as floats.
    """
    critiques = 0
    if rules.critique_weight:
        # A matched critique counts as negative; its own words ("better") do not count.
        text = text.lower().replace("\u2019", "'")
        for pattern in _compiled_all(rules)[4]:
            text, found = pattern.subn(" ", text)
            critiques += found
    tokens = words(text)
    last = max((i for i, w in enumerate(tokens) if w in rules.contrast_words), default=-1)
    if last >= 0 and rules.contrast_before_weight != 1.0:
        p0, n0 = _count_words(tokens[:last], rules)
        p1, n1 = _count_words(tokens[last + 1 :], rules)
        positive = rules.contrast_before_weight * p0 + p1
        negative = rules.contrast_before_weight * n0 + n1
    else:
        positive, negative = _count_words(tokens, rules)
    negative += rules.critique_weight * critiques
    return float(positive), float(negative)


@functools.lru_cache(maxsize=8)
def _compiled_all(rules: ReviewRules):
    return (*_compiled(rules), [re.compile(p) for p in rules.critique_patterns])


def _count_words(tokens: list, rules: ReviewRules) -> tuple:
    lexicon, overrides, _, _ = _compiled(rules)
    negations = _negations()
    positive = negative = 0
    negated_until = -1
    excess_at = -2
    for i, word in enumerate(tokens):
        if word in negations:
            negated_until = i + rules.negation_window
            continue
        if word in rules.excess_words or (excess_at == i and word in ("much", "many")):
            excess_at = i + 1  # "too much contrast": the excess moves on to "contrast"
            continue
        value = _valence(word, tokens[i - 1] if i else None, lexicon, overrides)
        if excess_at == i and value > -rules.min_valence:
            # "too dark", "too saturated": excess is a fault whatever the word.
            if i <= negated_until:
                continue
            negative += 1
            continue
        if abs(value) < rules.min_valence:
            continue
        if i <= negated_until:
            value = -value
        if value > 0:
            positive += 1
        else:
            negative += 1
    return positive, negative


def lexicon_table(vocabulary_words: Sequence[str], rules: ReviewRules = ReviewRules()) -> np.ndarray:
    """The `SentimentLexicon` table of a vocabulary, from the derivation's own word lists.

    Row `i + features.NUM_RESERVED_TOKENS` describes `vocabulary_words[i]` (rows
    0 and 1, padding and OOV, stay zero); the columns are
    `tfaesthetic.layers.sentiment_lexicon.COLUMNS`:

    - valence: `rules.photographic_polarity`, else VADER's lexicon, divided by 4
      (VADER's range) into [-1, 1]; 0 for the negation, excess and contrast words
      themselves (they modify their neighbours instead);
    - negation: 1 for VADER's negations and this module's additions, matched with
      and without the apostrophe that the model's tokeniser drops ("isnt");
    - excess: 1 for `rules.excess_words`;
    - contrast: 1 for `rules.contrast_words`.

    Args:
        vocabulary_words: the vocabulary words in id order (`vocab.txt`).
        rules: the `ReviewRules` whose lexicon overrides and word lists to use.

    Returns:
        float32 `[len(vocabulary_words) + NUM_RESERVED_TOKENS, 4]`.
    """
    lexicon, overrides, _, _ = _compiled(rules)
    negations = {w.replace("'", "") for w in _negations()}
    table = np.zeros((len(vocabulary_words) + features.NUM_RESERVED_TOKENS, 4), np.float32)
    for i, word in enumerate(vocabulary_words):
        row = table[i + features.NUM_RESERVED_TOKENS]
        if word in negations:
            row[1] = 1.0
        elif word in rules.excess_words:
            row[2] = 1.0
        elif word in rules.contrast_words:
            row[3] = 1.0
        else:
            row[0] = float(overrides.get(word, lexicon.get(word, 0.0))) / 4.0
    return table


def level_of(positive: int, negative: int, rules: ReviewRules = ReviewRules()) -> int:
    """Preference level 0..4 of a review from its word counts (net = pos - neg)."""
    net = positive - negative
    return int(sum(net >= t for t in rules.level_thresholds))


def rating_of(level: int, rules: ReviewRules = ReviewRules()) -> int:
    """s_uv: 0 for the two lowest levels (by default), 1 otherwise."""
    return int(level >= rules.good_min_level)


def _sentences(text: str) -> list:
    return [s.strip() for s in _SENTENCE_RE.findall(text) if s.strip() and any(c.isalpha() for c in s)]


def _is_question(sentence: str, rules: ReviewRules) -> bool:
    """Ends with "?", or starts with a question word without being an exclamation
    ("Where was this taken" is a question, "What a lovely scene." is not)."""
    if sentence.rstrip().endswith("?"):
        return True
    ws = words(sentence)
    if not ws or ws[0] not in rules.question_starts or sentence.rstrip().endswith("!"):
        return False
    return count_sentiment(sentence, rules) == (0, 0)


def classify(text: str, rules: ReviewRules = ReviewRules()) -> str:
    """Review type ("I".."IV") of one comment, by the rules in the module docstring."""
    lexicon, overrides, feelings, negative_feelings = _compiled(rules)
    lower = text.lower().replace("\u2019", "'")
    tokens = words(text)
    if not tokens:
        return TYPE_EQUIVOCAL
    if any(w in rules.attribute_words for w in tokens) or any(p in lower for p in rules.attribute_phrases):
        return TYPE_RULE
    sentences = _sentences(text)
    if sentences and all(_is_question(s, rules) for s in sentences):
        return TYPE_EQUIVOCAL
    if any(p.search(lower) for p in negative_feelings) or any(p.search(lower) for p in feelings):
        return TYPE_FEELING
    positive, negative = count_sentiment(text, rules)
    if positive + negative == 0:
        return TYPE_EQUIVOCAL
    if any(w in rules.photo_words for w in tokens):
        return TYPE_FEELING
    if len(tokens) <= rules.short_feeling_max_words and all(
        w in rules.filler_words
        or abs(_valence(w, None, lexicon, overrides)) >= rules.min_valence
        or w in _negations()
        for w in tokens
    ):
        return TYPE_FEELING
    return TYPE_AMBIGUOUS


def derive(text: str, rules: ReviewRules = ReviewRules()) -> Derivation:
    """Derives the review type, preference level and rating s_uv of one comment.

    Args:
        text: the raw comment.
        rules: the `ReviewRules`.

    Returns:
        A `Derivation(kind, level, rating, text)`; `rating` is -1 for the dropped
        types III and IV, whose `text` is the original comment.

    Reference:
        Wang et al., IJCAI 2018, §4.1 (review classification, cleaning,
        sentiment counting, rating generation).
    """
    if not isinstance(text, str):
        raise TypeError(f"derive() expects a str comment. Received: {type(text).__name__}")
    kind = classify(text, rules)
    positive, negative = count_sentiment(text, rules)
    if kind == TYPE_FEELING:
        _, _, _, negative_feelings = _compiled(rules)
        lower = text.lower().replace("\u2019", "'")
        if any(p.search(lower) for p in negative_feelings):
            good = False
        elif positive != negative:
            good = positive > negative
        else:
            good = vader_compound(text) >= 0
        cleaned = GOOD_TEXT if good else BAD_TEXT
        if rules.rewrite_feelings:
            positive, negative = count_sentiment(cleaned, rules)
        level = level_of(positive, negative, rules)
        return Derivation(kind, level, rating_of(level, rules), cleaned, positive, negative)
    if kind == TYPE_RULE:
        positive, negative = weighted_sentiment(text, rules)
        level = level_of(positive, negative, rules)
        net = positive - negative
        if positive == 0 and negative == 0:
            rating = rating_of(level, rules) if rules.rate_without_sentiment else features.NO_RATING
        elif positive > 0 and negative > 0 and rules.mixed_good_min_net is not None:
            rating = 1 if net >= rules.mixed_good_min_net else 0 if net <= rules.mixed_bad_max_net else features.NO_RATING
        else:
            rating = rating_of(level, rules)
        return Derivation(kind, level, rating, text, positive, negative)
    level = level_of(positive, negative, rules)
    return Derivation(kind, level, features.NO_RATING, text, positive, negative)


@functools.lru_cache(maxsize=None)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    """VADER's compound score of a text (the `vader_sign` / `vader_positive` references of `review_check`)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def consistency(mean_scores: Sequence[float], ratings_per_image: Sequence[Iterable[int]], threshold: float) -> float:
    """Eq. 7: agreement between the vote distributions and the derived ratings.

    For each image v with at least one derived rating (entries -1 are ignored),
    b_v = 1 when its mean vote is above `threshold` (5 on AVA), else 0, and the
    image contributes #(s_v == b_v) / #(s_v). The sum is divided by the number of
    such images, so the result is a fraction in [0, 1] (paper: 0.8106 on AVA).

    Args:
        mean_scores: mean vote of every image.
        ratings_per_image: the derived ratings s_uv of every image's comments.
        threshold: good/bad threshold of the mean score (`ScoreScale.threshold`).

    Returns:
        The consistency ratio, or NaN when no image has a rating.

    Reference:
        Wang et al., IJCAI 2018, Eq. 7.
    """
    mean_scores = list(mean_scores)
    ratings_per_image = list(ratings_per_image)
    if len(mean_scores) != len(ratings_per_image):
        raise ValueError(
            "mean_scores and ratings_per_image must have one entry per image. "
            f"Received: len(mean_scores)={len(mean_scores)}, len(ratings_per_image)={len(ratings_per_image)}"
        )
    total = 0.0
    images = 0
    for mean, ratings in zip(mean_scores, ratings_per_image):
        s = np.asarray([r for r in ratings if r in (0, 1)], dtype=np.int64)
        if s.size == 0 or mean is None or not np.isfinite(mean):
            continue
        b = 1 if mean > threshold else 0
        total += float(np.mean(s == b))
        images += 1
    return total / images if images else float("nan")


def mean_score(votes: Sequence[int], scale: features.ScoreScale) -> float:
    """Mean score of a vote distribution on `scale` (NaN when there are no votes)."""
    votes = np.asarray(votes, dtype=np.float64)
    if votes.shape != (scale.num_bins,):
        raise ValueError(f"Expected {scale.num_bins} score bins. Received: votes.shape={votes.shape}")
    total = votes.sum()
    return float(np.dot(votes, scale.values) / total) if total > 0 else float("nan")


def derive_ratings(records, rules: ReviewRules = ReviewRules(), *, rewrite: bool = False) -> dict:
    """Applies `derive` to every comment of a list of `ImageRecord`s, in place.

    Fills `Comment.sentiment` (level) and `Comment.rating` (s_uv, -1 for types
    III/IV). The raw text stays in the record (also for dropped types) unless
    `rewrite` is True, in which case type II comments are replaced by "The photo
    is good/bad" as in the paper's cleaning step.

    Args:
        records: `ImageRecord`s.
        rules: the `ReviewRules`.
        rewrite: store the cleaned text of type II comments.

    Returns:
        A JSON-able summary: comment counts per type, per level and per rating.
    """
    kinds = collections.Counter()
    levels = collections.Counter()
    ratings = collections.Counter()
    for record in records:
        for comment in record.comments:
            d = derive(comment.text, rules)
            comment.sentiment = d.level
            comment.rating = d.rating
            if rewrite and d.kind == TYPE_FEELING:
                comment.text = d.text
            kinds[d.kind] += 1
            levels[d.level] += 1
            ratings[d.rating] += 1
    return {
        "types": {k: kinds.get(k, 0) for k in KINDS},
        "levels": {str(k): levels.get(k, 0) for k in range(5)},
        "ratings": {"good": ratings.get(1, 0), "bad": ratings.get(0, 0), "dropped": ratings.get(features.NO_RATING, 0)},
    }


def records_consistency(records, scale: features.ScoreScale) -> Optional[float]:
    """Eq. 7 over `ImageRecord`s that have votes; None when none has votes."""
    means, ratings = [], []
    for record in records:
        if record.votes is None:
            continue
        means.append(mean_score(record.votes, scale))
        ratings.append([c.rating for c in record.comments])
    if not means:
        return None
    value = consistency(means, ratings, scale.threshold)
    return None if np.isnan(value) else value


def review_check(records, scale: features.ScoreScale, compounds: Optional[Sequence] = None) -> Optional[dict]:
    """How well the derived ratings agree with the votes, beside two trivial references.

    Over the images with votes and at least one comment:

    - `consistency`: Eq. 7 (`consistency`) of `derived` (the comments' `rating`),
      of `all_good` (every comment rated 1: the share of images above the
      threshold), of `all_good_same_images` (every comment rated 1, on the images
      that have a derived rating, the images `derived` is computed on), and of
      `vader_sign` (a comment is 1 when its VADER compound score is >= 0);
    - `share_good_srcc`: the Spearman correlation between each image's mean vote
      and its share of 1s: `derived` (images with a derived rating),
      `vader_positive` (share of comments with compound > 0) and `mean_level`
      (the mean preference level of the comments, types III/IV included);
    - `images`, `images_rated`: how many images enter each figure.

    Args:
        records: `ImageRecord`s after `derive_ratings`.
        scale: the score scale (threshold of Eq. 7).
        compounds: optional, per record of `records`, the `vader_compound` of each
            of its comments (the records writer computes them in its workers).

    Returns:
        The dict above (floats; None where no image qualifies), or None when no
        image has votes and comments.
    """
    from tfaesthetic.metrics.evaluation import spearman

    kept = [i for i, r in enumerate(records) if r.votes is not None and sum(r.votes) > 0 and r.comments]
    rows = [records[i] for i in kept]
    if not rows:
        return None
    means = [mean_score(r.votes, scale) for r in rows]
    derived = [[int(c.rating) for c in r.comments] for r in rows]
    if compounds is None:
        compounds = [[vader_compound(c.text) for c in r.comments] for r in rows]
    else:
        compounds = [list(compounds[i]) for i in kept]
    rated = [i for i, s in enumerate(derived) if any(x in (0, 1) for x in s)]

    def eq7(indices, ratings):
        value = consistency([means[i] for i in indices], [ratings[i] for i in indices], scale.threshold)
        return None if np.isnan(value) else float(value)

    def srcc(indices, values):
        if len(indices) < 2:
            return None
        value = spearman(np.asarray([means[i] for i in indices]), np.asarray(values, dtype=np.float64))
        return None if not np.isfinite(value) else float(value)

    everyone = list(range(len(rows)))
    good = [[1] * len(s) for s in derived]
    return {
        "consistency": {
            "derived": eq7(everyone, derived),
            "all_good": eq7(everyone, good),
            "all_good_same_images": eq7(rated, good),
            "vader_sign": eq7(everyone, [[int(v >= 0) for v in c] for c in compounds]),
        },
        "share_good_srcc": {
            "derived": srcc(rated, [np.mean([x for x in derived[i] if x in (0, 1)]) for i in rated]),
            "vader_positive": srcc(everyone, [np.mean([v > 0 for v in c]) for c in compounds]),
            "mean_level": srcc(everyone, [np.mean([c.sentiment for c in r.comments]) for r in rows]),
        },
        "images": len(rows),
        "images_rated": len(rated),
    }
