"""The procedural demo dataset: the embedded default data of tfaesthetic (SPEC §2.5).

`build_demo` draws a small, deterministic photo-and-comment collection with real,
learnable structure and writes it as ordinary tfaesthetic records (AVA score scale):

* **Images** (JPEG, quality 90) of six content classes (the semantic tags:
  landscape, portrait, still life, abstract, architecture, floral). Five visible
  attributes decide their quality, each scored in [-1, 1] (1 = best):
  `sharpness` (Gaussian blur), `exposure` (too dark or blown out, in stops),
  `composition` (subject on a rule-of-thirds point, centred, or cut off at an edge),
  `colour` (harmonious palette of close hues vs clashing complementary hues) and
  `noise` (Gaussian sensor noise). All are plainly visible at 32-64 px.
* **Votes**: a latent quality Q (a weighted sum of the attributes plus a small
  content effect and noise) gives a mean score 5 + `SCORE_SLOPE` * Q; 50-200 votes
  are drawn from a Gaussian around it with a per-image spread, discretised to the
  10 AVA bins, so both classes around the threshold 5 are well represented.
* **Users** (`user_000` ...) each care mostly about one or two attributes (their
  *taste*), have a personal bias and a favourite hue `phi_u` of the colour wheel
  (spread evenly over the users, so it cancels out in the crowd's votes). A user's
  opinion of an image is `OPINION_QUALITY_WEIGHT * Q + taste . attributes +
  HUE_TASTE_WEIGHT * cos(2 pi (hue - phi_u)) + bias + noise`, where `hue` is the
  base hue of the image's palette. The hue term is the part of personal taste that
  a small CNN with global pooling sees at once (the image's mean colour), whereas
  composition, say, needs spatial layout: it is what the no-review (taste-profile)
  path of CFAN and the visual factors of VBPR can learn at the demo's size.
* **Comments** (3-10 distinct users per image) are written from the image's actual
  attributes and the user's opinion: photographic-rule sentences (type I) about the
  attributes the user cares about and that agree with the opinion, subjective
  feelings (type II), a few ambiguous remarks and questions (types III/IV, which the
  derivation drops), and a few noise comments that contradict the image. A few
  comments have no letters and a few images have no comments at all, to exercise
  the bad-input rules of the writer.
* **Derived ratings**: every comment goes through
  `tfaesthetic.records.reviews.derive` (seed 000 §4.1), exactly as for AVA.
* **Splits**: 80/10/10 train/val/test by image, from a seeded permutation.

Everything is drawn from `numpy.random.default_rng([seed, stream, item])`, so a
build is a pure function of its arguments. The hidden attributes, qualities and
tastes are *not* written anywhere a model could read them; the manifest records only
the generator's parameters (see `generator_params`).
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import json
import logging
import math
import os
import time
from typing import Callable, Optional

import numpy as np

from tfaesthetic import features

GENERATOR_NAME = "tfaesthetic.records.demo"
# Bump when the generated content changes, so `ensure_demo_records` rebuilds.
GENERATOR_VERSION = 4

ATTRIBUTES = ("sharpness", "exposure", "composition", "colour", "noise")
TAGS = ("landscape", "portrait", "still_life", "abstract", "architecture", "floral")

# Attribute scores are 2 * Beta(a, a) - 1 with this a: < 1 makes flaws mostly either
# clearly present or absent (as in real photos), 1 would be uniform.
ATTRIBUTE_SHAPE = 0.6
# Weights of the attributes in the latent quality Q.
QUALITY_WEIGHTS = (0.9, 0.8, 0.7, 0.7, 0.45)
# Small content effect on Q, per primary tag (semantic signal for the tag heads).
TAG_QUALITY_OFFSET = (0.15, 0.05, 0.0, -0.2, 0.05, 0.1)
# Standard deviation of the image-level noise added to Q.
QUALITY_NOISE = 0.3
# Mean score of the votes: 5 + SCORE_SLOPE * Q, clipped to SCORE_RANGE.
SCORE_SLOPE = 0.8
SCORE_RANGE = (1.8, 9.0)
# Per-image standard deviation of the votes around their mean, drawn uniformly.
VOTE_SPREAD = (0.9, 1.7)
# Number of votes per image, drawn uniformly (inclusive).
VOTES_PER_IMAGE = (50, 200)

# Users: weight of the shared quality in a user's opinion, of the attribute(s) the
# user cares about, of the other attributes, and the spread of biases and noise.
OPINION_QUALITY_WEIGHT = 0.8
TASTE_FOCUS_WEIGHT = 1.6
TASTE_SECOND_WEIGHT = 0.8
TASTE_BASE_WEIGHT = 0.1
SECOND_FOCUS_PROBABILITY = 0.35
USER_BIAS_STD = 0.35
OPINION_NOISE = 0.35
# Weight of the user's favourite hue in the opinion (0 would leave only the tastes
# above, which a tiny backbone barely sees: see the module docstring).
HUE_TASTE_WEIGHT = 2.0
# Favourite hues: user u gets (u * HUE_STEP + jitter) mod 1 turns (golden-ratio
# steps: evenly spread for any number of users).
HUE_STEP = 0.6180339887
HUE_JITTER = 0.05

# Comments per image (inclusive), and the share of images with none.
COMMENTS_PER_IMAGE = (3, 10)
NO_COMMENT_PROBABILITY = 0.02
# Comment kinds (the rest are photographic-rule comments, type I).
NO_LETTERS_PROBABILITY = 0.015
QUESTION_PROBABILITY = 0.06  # type IV
AMBIGUOUS_PROBABILITY = 0.05  # type III
FEELING_PROBABILITY = 0.18  # type II
CONTRADICTION_PROBABILITY = 0.06  # a type I sentence that contradicts the image

# Rendering.
MAX_BLUR_SIGMA = 0.06  # in units of the image size, at sharpness -1
MAX_EXPOSURE_STOPS = 1.5  # at exposure -1 (dark or bright)
MAX_NOISE_STD = 0.06  # on the [0, 1] intensity scale, at noise -1
MAX_HUE_SPREAD = 0.5  # in turns of the colour wheel, at colour -1
JPEG_QUALITY = 90

TRAIN_FRACTION = 0.8
VAL_FRACTION = 0.1

# Secondary tags that can accompany each primary tag (drawn as a small extra element).
_SECONDARY = {
    "landscape": ("architecture", "floral"),
    "portrait": ("floral", "architecture"),
    "still_life": ("floral",),
    "abstract": (),
    "architecture": ("landscape", "portrait"),
    "floral": ("landscape", "portrait"),
}
SECONDARY_TAG_PROBABILITY = 0.35

# Stream ids of the random generators, so each kind of draw is independent.
_STREAM_USERS, _STREAM_SPLIT, _STREAM_IMAGE, _STREAM_RENDER, _STREAM_VOTES, _STREAM_COMMENTS = range(6)


# --------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DemoUser:
    """One simulated user.

    Attributes:
        name: the user id written to users.tsv (`user_017`).
        taste: weight of each of `ATTRIBUTES` in the user's opinion.
        bias: the user's personal offset (generous > 0, harsh < 0).
        hue: the user's favourite palette hue, in turns of the colour wheel.
    """

    name: str
    taste: tuple
    bias: float
    hue: float = 0.0

    @property
    def focus(self) -> str:
        """The attribute this user cares about most."""
        return ATTRIBUTES[int(np.argmax(self.taste))]


@dataclasses.dataclass
class DemoImage:
    """The hidden generative description of one image (never written to records).

    Attributes:
        image_id: the record id (`demo_00042`).
        split: train / val / test.
        tags: tag ids, primary first.
        attributes: one score in [-1, 1] per entry of `ATTRIBUTES` (1 = best).
        exposure_sign: -1 when a bad exposure is too dark, +1 when too bright.
        placement: "thirds", "centre" or "edge".
        hue: base hue of the palette, in turns of the colour wheel.
        quality: the latent quality Q.
        mean_score: the mean the votes were drawn around.
    """

    image_id: str
    split: str
    tags: tuple
    attributes: np.ndarray
    exposure_sign: int
    placement: str
    hue: float
    quality: float
    mean_score: float


@dataclasses.dataclass
class DemoData:
    """A generated demo collection, ready for `write_records`.

    Attributes:
        records: one `features.ImageRecord` per image (encoded JPEG bytes, votes,
            tags, comments with derived sentiment and rating).
        images: the hidden description of each image, aligned with `records`.
        users: the simulated users (index = user index in the records).
        opinions: per image, one `(user_index, opinion)` pair per comment that
            carries a user (aligned with the comments, `None` for no-letter ones).
        tags: the tag names (index = tag id).
    """

    records: list
    images: list
    users: list
    opinions: list
    tags: tuple = TAGS

    @property
    def user_names(self) -> list:
        return [u.name for u in self.users]


def generator_params(*, num_images: int, image_size: int, num_users: int, seed: int, num_shards: int) -> dict:
    """The generator description stored in the manifest (`extra_manifest["generator"]`)."""
    return {
        "name": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "num_images": int(num_images),
        "image_size": int(image_size),
        "num_users": int(num_users),
        "seed": int(seed),
        "num_shards": int(num_shards),
        "attributes": list(ATTRIBUTES),
    }


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def _hsv(h, s, v):
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), np.float32)


def _palette(rng, colour: float):
    """Four colours whose hue spread grows as `colour` falls from 1 to -1.

    The base hue is the first draw of `rng` (`palette_hue` reads it back).
    """
    h0 = rng.uniform()
    spread = 0.03 + (1.0 - colour) / 2.0 * (MAX_HUE_SPREAD - 0.03)
    sat = 0.45 + (1.0 - colour) / 2.0 * 0.45
    hues = [h0, h0 + spread, h0 - 0.6 * spread, h0 + 0.5 * spread * rng.choice([-1, 1])]
    values = [0.8, 0.7, 0.45, 0.95]
    return [_hsv(h + rng.normal(0, 0.01), sat + rng.normal(0, 0.05), v) for h, v in zip(hues, values)]


class _Canvas:
    """A float RGB canvas in [0, 1] with anti-aliased shape primitives."""

    def __init__(self, size: int):
        self.size = size
        self.pixels = np.zeros((size, size, 3), np.float32)
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y, self.x = np.meshgrid(coords, coords, indexing="ij")

    def _edge(self, signed_distance):
        # signed distance in image units (> 0 inside) -> coverage with a 1-px ramp
        return np.clip(signed_distance * self.size + 0.5, 0.0, 1.0)

    def _window(self, x0, y0, x1, y1):
        """Pixel slices covering [x0, x1] x [y0, y1] (image units) plus a 2-px margin."""
        lo = lambda v: int(min(max(math.floor(v * self.size) - 2, 0), self.size))
        hi = lambda v: int(min(max(math.ceil(v * self.size) + 2, 0), self.size))
        return slice(lo(y0), hi(y1)), slice(lo(x0), hi(x1))

    def paint(self, mask, colour, window=(slice(None), slice(None))):
        mask = mask[..., None]
        region = self.pixels[window]
        self.pixels[window] = region * (1.0 - mask) + np.asarray(colour, np.float32) * mask

    def vertical_gradient(self, top, bottom, y0=0.0, y1=1.0):
        t = np.clip((self.y - y0) / max(y1 - y0, 1e-6), 0, 1)[..., None]
        grad = np.asarray(top) * (1 - t) + np.asarray(bottom) * t
        mask = ((self.y >= y0) & (self.y < y1)).astype(np.float32)[..., None]
        self.pixels = self.pixels * (1 - mask) + grad * mask

    def disc(self, cx, cy, r, colour):
        w = self._window(cx - r, cy - r, cx + r, cy + r)
        d = r - np.sqrt((self.x[w] - cx) ** 2 + (self.y[w] - cy) ** 2)
        self.paint(self._edge(d), colour, w)

    def ellipse(self, cx, cy, rx, ry, colour):
        w = self._window(cx - rx, cy - ry, cx + rx, cy + ry)
        d = 1.0 - np.sqrt(((self.x[w] - cx) / rx) ** 2 + ((self.y[w] - cy) / ry) ** 2)
        self.paint(self._edge(d * min(rx, ry)), colour, w)

    def rect(self, x0, y0, x1, y1, colour):
        w = self._window(x0, y0, x1, y1)
        x, y = self.x[w], self.y[w]
        d = np.minimum(np.minimum(x - x0, x1 - x), np.minimum(y - y0, y1 - y))
        self.paint(self._edge(d), colour, w)

    def speckle(self, rng, amount, y0=0.0, y1=1.0):
        """Fine texture (grass, gravel, fabric) so that blur is measurable."""
        tex = rng.normal(0.0, amount, (self.size, self.size, 1)).astype(np.float32)
        mask = ((self.y >= y0) & (self.y < y1)).astype(np.float32)[..., None]
        self.pixels = self.pixels + tex * mask


def _flower(c: _Canvas, cx, cy, r, petal, centre):
    for k in range(6):
        a = k * math.pi / 3
        c.disc(cx + 0.55 * r * math.cos(a), cy + 0.55 * r * math.sin(a), 0.45 * r, petal)
    c.disc(cx, cy, 0.35 * r, centre)


def _building(c: _Canvas, rng, cx, base, width, height, wall, window):
    x0, x1, y0 = cx - width / 2, cx + width / 2, base - height
    c.rect(x0, y0, x1, base, wall)
    step = max(2.5 / c.size, width / 4)
    for wy in np.arange(y0 + step * 0.6, base - step * 0.5, step):
        for wx in np.arange(x0 + step * 0.5, x1 - step * 0.3, step):
            c.rect(wx, wy, wx + step * 0.45, wy + step * 0.45, window)


def _figure(c: _Canvas, cx, cy, r, skin, clothes):
    c.ellipse(cx, cy + 1.9 * r, 1.3 * r, 1.2 * r, clothes)
    c.ellipse(cx, cy, 0.8 * r, r, skin)
    eye = np.asarray([0.08, 0.06, 0.05], np.float32)
    c.disc(cx - 0.3 * r, cy - 0.15 * r, max(0.14 * r, 0.7 / c.size), eye)
    c.disc(cx + 0.3 * r, cy - 0.15 * r, max(0.14 * r, 0.7 / c.size), eye)
    c.rect(cx - 0.3 * r, cy + 0.4 * r, cx + 0.3 * r, cy + 0.5 * r, eye)


def _subject_position(rng, placement: str):
    if placement == "thirds":
        cx, cy = rng.choice([1 / 3, 2 / 3]), rng.choice([1 / 3, 2 / 3])
        return cx + rng.normal(0, 0.02), cy + rng.normal(0, 0.02)
    if placement == "centre":
        return 0.5 + rng.normal(0, 0.02), 0.5 + rng.normal(0, 0.02)
    # cut off at one edge
    side = rng.integers(4)
    along = rng.uniform(0.25, 0.75)
    edge = rng.uniform(0.02, 0.08)
    return [(edge, along), (1 - edge, along), (along, edge), (along, 1 - edge)][side]


def _draw_scene(c: _Canvas, rng, tag: str, pal, cx, cy):
    """Draws the content of `tag` with its main subject at (cx, cy)."""
    sky, subject, ground, accent = pal
    light_sky = np.clip(sky * 0.6 + 0.4, 0, 1)
    if tag == "landscape":
        horizon = float(np.clip(cy, 0.1, 0.9))
        c.vertical_gradient(sky, light_sky, 0.0, horizon)
        c.vertical_gradient(ground * 1.2, ground * 0.7, horizon, 1.0001)
        c.speckle(rng, 0.06, horizon, 1.0)
        c.rect(cx - 0.025, horizon - 0.16, cx + 0.025, horizon + 0.01, ground * 0.5)
        c.disc(cx, horizon - 0.2, 0.1, subject)
    elif tag == "portrait":
        c.vertical_gradient(sky * 0.9, sky * 0.6)
        c.speckle(rng, 0.025)
        skin = _hsv(colorsys.rgb_to_hsv(*subject)[0], 0.3, 0.9)
        _figure(c, cx, cy - 0.05, 0.13, skin, subject * 0.8)
    elif tag == "still_life":
        table = 0.62
        c.vertical_gradient(sky * 0.8, sky * 0.6, 0.0, table)
        c.vertical_gradient(ground, ground * 0.6, table, 1.0001)
        for k in range(int(c.size // 4)):  # wood grain
            y = table + (k + 0.5) * (1 - table) / (c.size // 4)
            c.rect(0, y, 1, y + 0.6 / c.size, ground * 0.5)
        base = float(np.clip(cy + 0.12, table + 0.02, 0.98))
        c.rect(cx - 0.06, base - 0.3, cx + 0.06, base, subject)
        c.disc(cx + 0.13, base - 0.06, 0.06, accent)
        c.disc(cx - 0.13, base - 0.05, 0.05, accent * 0.85)
    elif tag == "abstract":
        c.vertical_gradient(sky, sky * 0.75)
        for _ in range(5):
            col = pal[rng.integers(1, 4)] * rng.uniform(0.7, 1.0)
            x, y, r = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), rng.uniform(0.04, 0.1)
            if rng.uniform() < 0.5:
                c.disc(x, y, r, col)
            else:
                c.rect(x - r, y - r, x + r, y + r, col)
        c.speckle(rng, 0.03)
        c.rect(cx - 0.13, cy - 0.13, cx + 0.13, cy + 0.13, subject)
        c.disc(cx, cy, 0.07, accent)
    elif tag == "architecture":
        c.vertical_gradient(sky, light_sky)
        street = 0.85
        for x in np.linspace(0.1, 0.9, 4):
            if abs(x - cx) > 0.12:
                _building(c, rng, x, street, 0.14, rng.uniform(0.25, 0.4), ground, ground * 0.5)
        _building(c, rng, cx, street, 0.2, float(np.clip(street - cy + 0.25, 0.3, 0.8)), subject, accent)
        c.rect(0, street, 1, 1.0001, ground * 0.4)
    elif tag == "floral":
        c.vertical_gradient(ground * 0.9, ground * 0.6)
        for _ in range(int(c.size // 3)):  # leaves and stems
            x, y = rng.uniform(0, 1), rng.uniform(0, 1)
            c.rect(x, y, x + 1.0 / c.size, y + rng.uniform(0.05, 0.15), ground * 1.3)
        c.speckle(rng, 0.03)
        _flower(c, cx, cy, 0.15, subject, accent)
    else:
        raise ValueError(f"Unknown demo tag. Received: tag={tag!r}, expected one of {TAGS}")


def _draw_secondary(c: _Canvas, rng, tag: str, pal, cx, cy):
    """A small element for a secondary tag, away from the main subject."""
    sky, subject, ground, accent = pal
    x = 0.2 if cx > 0.5 else 0.8
    y = 0.8 if cy < 0.5 else 0.25
    if tag == "floral":
        _flower(c, x, y, 0.07, accent, subject)
    elif tag == "architecture":
        _building(c, rng, x, min(y + 0.15, 1.0), 0.12, 0.3, ground * 0.8, accent)
    elif tag == "portrait":
        skin = _hsv(colorsys.rgb_to_hsv(*subject)[0], 0.3, 0.9)
        _figure(c, x, y - 0.05, 0.06, skin, accent)
    elif tag == "landscape":
        c.vertical_gradient(ground * 1.1, ground * 0.7, 0.85, 1.0001)
        c.speckle(rng, 0.05, 0.85, 1.0)


def _gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (reflect padding); `sigma` in pixels."""
    if sigma < 0.3:
        return pixels
    radius = int(math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    size = pixels.shape[0]
    for axis in (0, 1):
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        padded = np.pad(pixels, pad, mode="reflect")
        out = np.zeros_like(pixels)
        for j, w in enumerate(taps):
            out += w * np.take(padded, np.arange(j, j + size), axis=axis)
        pixels = out
    return pixels


def render_image(rng: np.random.Generator, *, size: int, tags, attributes, exposure_sign: int, placement: str) -> np.ndarray:
    """Draws one image whose visible quality follows `attributes`.

    Args:
        rng: the image's own random generator.
        size: side length in pixels.
        tags: tag ids, primary first.
        attributes: one score in [-1, 1] per entry of `ATTRIBUTES` (1 = best).
        exposure_sign: -1 to under-expose, +1 to over-expose a bad exposure.
        placement: "thirds", "centre" or "edge" (subject placement).

    Returns:
        A uint8 array of shape [size, size, 3].
    """
    sharpness, exposure, _, colour, noise = (float(a) for a in attributes)
    canvas = _Canvas(size)
    pal = _palette(rng, colour)
    cx, cy = _subject_position(rng, placement)
    _draw_scene(canvas, rng, TAGS[tags[0]], pal, cx, cy)
    if len(tags) > 1:
        _draw_secondary(canvas, rng, TAGS[tags[1]], pal, cx, cy)
    pixels = np.clip(canvas.pixels, 0.0, 1.0)
    pixels = _gaussian_blur(pixels, (1.0 - sharpness) / 2.0 * MAX_BLUR_SIGMA * size)
    stops = exposure_sign * (1.0 - exposure) / 2.0 * MAX_EXPOSURE_STOPS
    pixels = pixels * (2.0**stops)
    pixels = pixels + rng.normal(0.0, (1.0 - noise) / 2.0 * MAX_NOISE_STD, pixels.shape).astype(np.float32)
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encodes a uint8 RGB array as baseline JPEG bytes with Pillow."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# Votes
# --------------------------------------------------------------------------------------


def vote_probabilities(mean: float, spread: float, num_bins: int = 10) -> np.ndarray:
    """A Gaussian around `mean` discretised to bins 1..num_bins (tails in the end bins)."""
    edges = np.arange(1, num_bins) + 0.5  # 1.5 .. num_bins - 0.5
    cdf = np.array([0.5 * (1.0 + math.erf((e - mean) / (spread * math.sqrt(2.0)))) for e in edges])
    cdf = np.concatenate([[0.0], cdf, [1.0]])
    return np.diff(cdf)


# --------------------------------------------------------------------------------------
# Comments
# --------------------------------------------------------------------------------------

# Photographic-rule sentences (type I), per attribute and polarity. Each carries
# sentiment words of a general lexicon (VADER) next to an aesthetic term, so that the
# derivation reads them the way the simulated user means them.
_RULE_SENTENCES = {
    ("sharpness", +1): (
        "The focus is tack sharp, great detail.",
        "Crisp and sharp, excellent focus.",
        "Lovely sharp details throughout.",
        "Perfect focus on the subject.",
    ),
    ("sharpness", -1): (
        "Sadly the focus is soft and blurry.",
        "Too blurry, poor focus.",
        "The shot is out of focus, a pity.",
        "Blurry details, bad focus.",
    ),
    ("exposure", +1): (
        "The exposure is perfect.",
        "Beautiful light and a good exposure.",
        "Nicely exposed, lovely tones.",
    ),
    ("exposure", -1, "dark"): (
        "Too dark, badly underexposed.",
        "Poor exposure, the shadows are dark and muddy.",
        "Underexposed and gloomy, bad light.",
    ),
    ("exposure", -1, "bright"): (
        "Overexposed, the highlights are blown out, bad exposure.",
        "Too bright and washed out, poor exposure.",
        "Harsh light, the sky is burnt out, overexposed.",
    ),
    ("composition", +1): (
        "Great composition.",
        "Nice placement of the subject on the thirds.",
        "Excellent framing, the composition is well balanced.",
    ),
    ("composition", -1, "centre"): (
        "Boring composition with the subject stuck in the middle.",
        "Static centred framing, weak composition.",
        "Dull composition, the subject sits dead centre.",
    ),
    ("composition", -1, "edge"): (
        "Awkward crop, the subject is cut off at the edge.",
        "Bad framing, the subject is lost at the edge.",
        "Poor composition, the subject is cropped badly.",
    ),
    ("colour", +1): (
        "The colours are vibrant and harmonious.",
        "Beautiful palette, pleasing colors.",
        "Lovely colour harmony.",
    ),
    ("colour", -1): (
        "The colours clash, ugly and garish.",
        "Harsh clashing colors, a mess.",
        "Awful colour combination.",
    ),
    ("noise", +1): (
        "Clean image with smooth tones, excellent quality.",
        "Very clean, smooth tones, nice quality.",
    ),
    ("noise", -1): (
        "Too much noise and ugly grain.",
        "Noisy and grainy, poor quality.",
        "Terrible noise all over the photo.",
    ),
}
_CLOSERS = {
    +1: ("Well done!", "Great shot!", "Superb work.", "Excellent photo."),
    -1: ("Overall a weak shot.", "Disappointing photo.", "A poor shot overall."),
}
# Subjective feelings (type II).
_FEELINGS = {
    +1: ("I love this photo!", "I really like this picture.", "I like this one a lot!", "Wow, I love it."),
    -1: ("I dislike this photo.", "I hate this picture.", "Sorry, I really dislike it."),
}
# Ambiguous remarks on the content (type III), per tag, and equivocal questions (type IV).
_AMBIGUOUS = {
    "landscape": ("I want to go hiking there.", "Is that near your village?"),
    "portrait": ("What a handsome man!", "What a cheerful guy!"),
    "still_life": ("Those apples look delicious!", "My grandmother had the same vase."),
    "abstract": ("This reminds me of a carpet.", "My kid draws shapes like these."),
    "architecture": ("I used to live in that city.", "How tall is that tower?"),
    "floral": ("My mother grows these flowers.", "What kind of flower is that?"),
}
_QUESTIONS = (
    "What camera did you use?",
    "Where was this taken?",
    "Is this film or digital?",
    "Which city is this?",
    "When did you take it?",
)
_NO_LETTERS = ("!!!", "10/10", ":-)", "+1", "5/5 ***", "?!")


def _rule_sentence(rng, attribute: str, polarity: int, image: DemoImage) -> str:
    if polarity > 0:
        key = (attribute, +1)
    elif attribute == "exposure":
        key = (attribute, -1, "dark" if image.exposure_sign < 0 else "bright")
    elif attribute == "composition":
        key = (attribute, -1, "centre" if image.placement == "centre" else "edge")
    else:
        key = (attribute, -1)
    options = _RULE_SENTENCES[key]
    return options[rng.integers(len(options))]


def _write_comment(rng, image: DemoImage, user: DemoUser, opinion: float) -> str:
    """One comment by `user` on `image`, given the user's opinion of it."""
    u = rng.uniform()
    if u < NO_LETTERS_PROBABILITY:
        return _NO_LETTERS[rng.integers(len(_NO_LETTERS))]
    u -= NO_LETTERS_PROBABILITY
    if u < QUESTION_PROBABILITY:
        return _QUESTIONS[rng.integers(len(_QUESTIONS))]
    u -= QUESTION_PROBABILITY
    if u < AMBIGUOUS_PROBABILITY:
        options = _AMBIGUOUS[TAGS[image.tags[0]]]
        return options[rng.integers(len(options))]
    u -= AMBIGUOUS_PROBABILITY
    polarity = 1 if opinion > 0 else -1
    if u < FEELING_PROBABILITY:
        options = _FEELINGS[polarity]
        return options[rng.integers(len(options))]
    u -= FEELING_PROBABILITY
    attrs = np.asarray(image.attributes, np.float64)
    taste = np.asarray(user.taste, np.float64)
    if u < CONTRADICTION_PROBABILITY:
        # A noise comment: a sentence that contradicts the image on a random attribute.
        k = int(rng.integers(len(ATTRIBUTES)))
        return _rule_sentence(rng, ATTRIBUTES[k], -1 if attrs[k] > 0 else 1, image)
    # Photographic-rule comment: talk about what the user cares about, truthfully,
    # choosing attributes whose state agrees with the opinion.
    agree = np.sign(attrs) == polarity
    weight = taste * np.abs(attrs) * agree + 1e-9
    if not agree.any():
        options = _FEELINGS[polarity]
        return options[rng.integers(len(options))]
    order = rng.choice(len(ATTRIBUTES), size=len(ATTRIBUTES), replace=False, p=weight / weight.sum())
    strength = abs(opinion)
    n_sentences = 1 + int(strength > 0.8 and agree.sum() > 1 and rng.uniform() < 0.6)
    sentences = [_rule_sentence(rng, ATTRIBUTES[k], polarity, image) for k in order[:n_sentences]]
    if rng.uniform() < 0.35 + 0.2 * min(strength, 1.0):
        options = _CLOSERS[polarity]
        sentences.append(options[rng.integers(len(options))])
    return " ".join(sentences)


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def _rng(seed: int, stream: int, item: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, item])


def make_users(num_users: int, seed: int) -> list:
    """The simulated users, with their tastes and biases."""
    users = []
    for u in range(num_users):
        rng = _rng(seed, _STREAM_USERS, u)
        taste = np.full(len(ATTRIBUTES), TASTE_BASE_WEIGHT)
        # Cycle the main focus so that every attribute has its fans.
        focus = (u + int(seed)) % len(ATTRIBUTES)
        taste[focus] = TASTE_FOCUS_WEIGHT
        if rng.uniform() < SECOND_FOCUS_PROBABILITY:
            second = int(rng.choice([k for k in range(len(ATTRIBUTES)) if k != focus]))
            taste[second] = TASTE_SECOND_WEIGHT
        bias = float(rng.normal(0.0, USER_BIAS_STD))
        hue = float((u * HUE_STEP + rng.uniform(0.0, HUE_JITTER)) % 1.0)
        users.append(DemoUser(name=f"user_{u:03d}", taste=tuple(float(t) for t in taste), bias=bias, hue=hue))
    return users


def _splits(num_images: int, seed: int) -> list:
    n_train = int(round(TRAIN_FRACTION * num_images))
    n_val = int(round(VAL_FRACTION * num_images))
    order = _rng(seed, _STREAM_SPLIT).permutation(num_images)
    split = ["test"] * num_images
    for rank, i in enumerate(order):
        split[i] = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
    return split


def palette_hue(seed: int, i: int) -> float:
    """Base hue (turns) of image `i`'s palette: the first draw of its render stream (see `_palette`)."""
    return float(_rng(seed, _STREAM_RENDER, i).uniform())


def _describe_image(i: int, split: str, seed: int) -> DemoImage:
    rng = _rng(seed, _STREAM_IMAGE, i)
    primary = int(rng.integers(len(TAGS)))
    tags = (primary,)
    seconds = _SECONDARY[TAGS[primary]]
    if seconds and rng.uniform() < SECONDARY_TAG_PROBABILITY:
        tags = (primary, TAGS.index(seconds[rng.integers(len(seconds))]))
    attrs = 2.0 * rng.beta(ATTRIBUTE_SHAPE, ATTRIBUTE_SHAPE, len(ATTRIBUTES)) - 1.0
    placement = str(rng.choice(["thirds", "centre", "edge"], p=[0.45, 0.3, 0.25]))
    attrs[ATTRIBUTES.index("composition")] = {"thirds": 0.9, "centre": -0.3, "edge": -0.9}[placement] + rng.normal(0, 0.08)
    attrs = np.clip(attrs, -1.0, 1.0)
    exposure_sign = int(rng.choice([-1, 1]))
    quality = float(np.dot(QUALITY_WEIGHTS, attrs) + TAG_QUALITY_OFFSET[primary] + rng.normal(0, QUALITY_NOISE))
    mean_score = float(np.clip(5.0 + SCORE_SLOPE * quality, *SCORE_RANGE))
    return DemoImage(
        image_id=f"demo_{i:05d}",
        split=split,
        tags=tags,
        attributes=attrs,
        exposure_sign=exposure_sign,
        placement=placement,
        hue=palette_hue(seed, i),
        quality=quality,
        mean_score=mean_score,
    )


def user_opinion(image: DemoImage, user: DemoUser, noise: float = 0.0) -> float:
    """A user's opinion of an image (> 0: likes it), before the comment is written."""
    taste_term = float(np.dot(user.taste, image.attributes))
    hue_term = HUE_TASTE_WEIGHT * math.cos(2.0 * math.pi * (image.hue - user.hue))
    return OPINION_QUALITY_WEIGHT * image.quality + taste_term + hue_term + user.bias + noise


def _default_derive():
    from tfaesthetic.records import reviews

    return reviews.derive


def generate_demo(
    *,
    num_images: int = 800,
    image_size: int = 64,
    num_users: int = 40,
    seed: int = 0,
    derive: Optional[Callable] = None,
) -> DemoData:
    """Draws the demo collection in memory (see the module docstring).

    Args:
        num_images: number of images.
        image_size: side length of the square images, in pixels (>= 16).
        num_users: number of simulated users (>= `COMMENTS_PER_IMAGE[1]`, so that
            every image can have distinct commenters).
        seed: the random seed; the collection is a pure function of the arguments.
        derive: `text -> object with .kind, .level, .rating`; defaults to
            `tfaesthetic.records.reviews.derive` (seed 000 §4.1).

    Returns:
        A `DemoData`.

    Reference:
        SPEC §2.5 (demo data); the ratings follow Wang et al., "Personalized image
        aesthetic assessment with reviews and collaborative filtering", IJCAI 2018,
        §4.1; the votes use the AVA 1..10 scale of Murray et al., CVPR 2012.
    """
    if num_images < 10:
        raise ValueError(f"The demo needs at least 10 images. Received: num_images={num_images}")
    if image_size < 16:
        raise ValueError(f"The demo needs images of at least 16 px. Received: image_size={image_size}")
    if num_users < COMMENTS_PER_IMAGE[1]:
        raise ValueError(
            f"The demo needs at least {COMMENTS_PER_IMAGE[1]} users (distinct commenters per image). "
            f"Received: num_users={num_users}"
        )
    derive = derive or _default_derive()
    users = make_users(num_users, seed)
    splits = _splits(num_images, seed)
    records, images, opinions = [], [], []
    for i in range(num_images):
        image = _describe_image(i, splits[i], seed)
        pixels = render_image(
            _rng(seed, _STREAM_RENDER, i),
            size=image_size,
            tags=image.tags,
            attributes=image.attributes,
            exposure_sign=image.exposure_sign,
            placement=image.placement,
        )
        vrng = _rng(seed, _STREAM_VOTES, i)
        spread = vrng.uniform(*VOTE_SPREAD)
        n_votes = int(vrng.integers(VOTES_PER_IMAGE[0], VOTES_PER_IMAGE[1] + 1))
        votes = vrng.multinomial(n_votes, vote_probabilities(image.mean_score, spread))

        crng = _rng(seed, _STREAM_COMMENTS, i)
        comments, image_opinions = [], []
        if crng.uniform() >= NO_COMMENT_PROBABILITY:
            n = int(crng.integers(COMMENTS_PER_IMAGE[0], COMMENTS_PER_IMAGE[1] + 1))
            for u in crng.choice(num_users, size=n, replace=False):
                user = users[int(u)]
                opinion = user_opinion(image, user, crng.normal(0.0, OPINION_NOISE))
                text = _write_comment(crng, image, user, opinion)
                d = derive(text)
                comments.append(features.Comment(text=text, user_index=int(u), sentiment=int(d.level), rating=int(d.rating)))
                image_opinions.append((int(u), float(opinion)))
        records.append(
            features.ImageRecord(
                image_id=image.image_id,
                split=image.split,
                encoded=encode_jpeg(pixels),
                image_format="jpeg",
                votes=[int(v) for v in votes],
                tags=tuple(int(t) for t in image.tags),
                comments=comments,
            )
        )
        images.append(image)
        opinions.append(image_opinions)
    return DemoData(records=records, images=images, users=users, opinions=opinions)


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def _note_bad_inputs(data: DemoData, rejections) -> None:
    """Counts the deliberate bad inputs; both are kept (documented rule below).

    * an image without comments is kept (its votes and pixels still train the
      image branch; it simply yields no review example);
    * a comment without letters ("!!!", "10/10") is kept in `comments/text` and
      the derivation drops it from the ratings (type IV, rating -1).
    """
    for record in data.records:
        if not record.comments:
            rejections.keep("image_without_comments", source="demo", image_id=record.image_id, level="image")
        for comment in record.comments:
            if not any(ch.isalpha() for ch in comment.text):
                rejections.keep(
                    "comment_without_letters", source="demo", image_id=record.image_id, detail=comment.text
                )


def build_demo(
    out_dir,
    *,
    num_images: int = 800,
    image_size: int = 64,
    num_users: int = 40,
    seed: int = 0,
    num_shards: int = 2,
    command_line: str = "",
    num_workers: Optional[int] = 1,
) -> dict:
    """Generates the demo collection and writes it as tfaesthetic records.

    Args:
        out_dir: output directory (created; old shards in it are replaced).
        num_images: number of images (80/10/10 train/val/test).
        image_size: side length of the square JPEG images, in pixels.
        num_users: number of simulated users (>= 10).
        seed: random seed; the same arguments give the same shards.
        num_shards: shards per split (capped at the split's size).
        command_line: the command that built the records, for the manifest.
        num_workers: processes for the writer's per-image work (None: one per
            core); the records do not depend on it.

    Returns:
        The manifest dict (also in `out_dir/manifest.json`); its `generator` entry
        holds `generator_params(...)`, `review_types` the number of comments of each
        review type, and `consistency` Eq. 7 of the derived ratings against the votes.

    Reference:
        Wang et al., IJCAI 2018, §4.1 and Eq. 7 (review -> rating derivation and its
        consistency check).
    """
    from tfaesthetic.records import reviews
    from tfaesthetic.records import writer
    from tfaesthetic.records.rejections import Rejections

    start = time.perf_counter()
    data = generate_demo(num_images=num_images, image_size=image_size, num_users=num_users, seed=seed)
    kinds = {}
    for record in data.records:
        for comment in record.comments:
            kind = reviews.classify(comment.text)
            kinds[kind] = kinds.get(kind, 0) + 1
    rejections = Rejections()
    _note_bad_inputs(data, rejections)
    params = generator_params(
        num_images=num_images, image_size=image_size, num_users=num_users, seed=seed, num_shards=num_shards
    )
    manifest = writer.write_records(
        str(out_dir),
        data.records,
        scale=features.AVA_SCALE,
        users=data.user_names,
        tags=list(data.tags),
        source=f"demo:seed={int(seed)}",
        rejections=rejections,
        num_shards=num_shards,
        command_line=command_line,
        num_workers=num_workers,
        extra_manifest={
            "generator": params,
            "review_types": {k: kinds.get(k, 0) for k in reviews.KINDS},
            "consistency": reviews.records_consistency(data.records, features.AVA_SCALE),
        },
    )
    logging.info("Demo records (%d images) built in %.1f s in %s", num_images, time.perf_counter() - start, out_dir)
    return manifest


def ensure_demo_records(out_dir, **kwargs) -> dict:
    """Builds the demo records in `out_dir` unless matching ones are already there.

    The records are reused when `manifest.json` exists, its `generator` entry
    equals `generator_params(...)` of the requested arguments (same generator
    version, sizes, seed and shards) and every shard it lists exists.

    Args:
        out_dir: the records directory.
        **kwargs: arguments of `build_demo` (defaults as there).

    Returns:
        The manifest (read back, or freshly written).
    """
    from tfaesthetic.records import writer

    build_args = dict(num_images=800, image_size=64, num_users=40, seed=0, num_shards=2)
    unknown = set(kwargs) - set(build_args) - {"command_line"}
    if unknown:
        raise TypeError(f"Unknown demo arguments. Received: {sorted(unknown)}; expected some of {sorted(build_args)}")
    build_args.update({k: v for k, v in kwargs.items() if k != "command_line"})
    wanted = generator_params(**build_args)
    try:
        manifest = writer.read_manifest(out_dir)
    except (FileNotFoundError, ValueError):
        manifest = None
    if manifest is not None and manifest.get("generator") == wanted:
        shards = manifest.get("files", {}).get("shards", {})
        if shards and all(os.path.exists(os.path.join(str(out_dir), name)) for name in shards):
            logging.info("Reusing demo records in %s", out_dir)
            return manifest
    return build_demo(out_dir, command_line=kwargs.get("command_line", ""), **build_args)


def summary(manifest: dict, out_dir) -> str:
    """A readable summary of a demo build, for the builder script."""
    lines = [f"Demo records in {os.path.abspath(str(out_dir))}"]
    lines.append("  images per split: " + json.dumps(manifest.get("splits", {})))
    lines.append("  rated reviews per split: " + json.dumps(manifest.get("reviews", {})))
    lines.append("  review types: " + json.dumps(manifest.get("review_types", {})))
    lines.append(f"  users: {manifest.get('num_users')}, tags: {manifest.get('num_tags')}, vocab: {manifest.get('vocab_size')}")
    consistency = manifest.get("consistency")
    if consistency is not None:
        lines.append(f"  Eq. 7 consistency of derived ratings with the votes: {100 * consistency:.2f}% (AVA paper: 81.06%)")
    counts = manifest.get("counts", {})
    lines.append("  rejected: " + json.dumps(counts.get("rejected", {})) + "; kept notes: " + json.dumps(counts.get("kept", {})))
    return "\n".join(lines)
