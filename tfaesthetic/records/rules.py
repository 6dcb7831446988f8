"""The record rules, in one place: the three sources and the writer call these (SPEC §2.3).

Each rule returns the problem as `(reason, detail)` (None when the value is
usable); the caller turns it into a rejection that points at its own source line,
so `rejected.jsonl` keeps the file and line of the record whatever rule fired.

- `parse_int`: integers in text sources are plain ASCII digits with an optional
  minus sign (`int()` alone would take `1_0`, `+1`, ` 1`, Arabic-Indic `٣`).
- `votes_problem`: one count per score bin, each in `0..MAX_COUNT`, not all zero.
- `int_problem` / `record_problem`: every integer the writer stores (votes, tags,
  challenge, comment user, sentiment, rating) is range-checked per record, so one
  out-of-range value (`100000000000000000000`) rejects one record instead of
  stopping the build at serialisation.
- `IdRegistry`: image ids are normalised by `features.normalize_id` (NFC,
  surrounding whitespace stripped), refused when they hold a control character
  (`invalid_id`), rejected as `duplicate_id` when equal to an earlier kept id,
  also when they differ from it only by zero-width/format characters; an id with
  such characters that collides with nothing is kept with a note
  (`zero_width_in_id`).
- `drop_missing_votes`: votes are all or nothing (`missing_votes`).
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Optional

from tfaesthetic import features

# The largest vote count, tag, challenge or user index stored (int32 range: the
# input pipeline and the models index with int32).
MAX_COUNT = 2**31 - 1
_ASCII_INT = re.compile(r"-?[0-9]+")

# (low, high) of the per-comment integers the writer stores.
_COMMENT_RANGES = {
    "user_index": (features.UNKNOWN_USER, MAX_COUNT),
    "sentiment": (0, 4),
    "rating": (features.NO_RATING, 1),
}


def parse_int(text) -> Optional[int]:
    """`int(text)` for plain ASCII digits with an optional leading minus (surrounding whitespace allowed), else None."""
    text = str(text).strip()
    if not _ASCII_INT.fullmatch(text):
        return None
    return int(text)


def int_problem(name: str, value, low: int, high: int) -> Optional[str]:
    """A detail when `value` is not an integer in `[low, high]`, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, bool) or int(value) != value:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            return f"Expected {name} as an integer in {low}..{high}. Received: {name}={value!r}"
    if not low <= int(value) <= high:
        return f"Expected {name} in {low}..{high}. Received: {name}={value}"
    return None


def votes_problem(votes, num_bins: int) -> Optional[tuple]:
    """The vote rule a row breaks, as `(reason, detail)`; None when the row is usable.

    Another number of values than `num_bins` (`votes_wrong_num_bins`), a count
    that is negative or above `MAX_COUNT` (`invalid_votes`), all counts zero
    (`no_votes`: the score distribution is undefined).
    """
    votes = list(votes)
    if len(votes) != num_bins:
        return "votes_wrong_num_bins", f"Expected {num_bins} score bins. Received: len(votes)={len(votes)}"
    for v in votes:
        detail = int_problem("vote count", v, 0, MAX_COUNT)
        if detail is not None:
            return "invalid_votes", f"{detail} (votes={_short_list(votes)})"
    if sum(int(v) for v in votes) == 0:
        return "no_votes", f"all vote counts are 0. Received: votes={votes}"
    return None


def _short_list(values, limit=12):
    text = repr(list(values)[:limit])
    return text if len(values) <= limit else text[:-1] + ", ...]"


def record_problem(record: features.ImageRecord, num_bins: int) -> Optional[tuple]:
    """The first rule a whole record breaks before it is serialised, as `(reason, detail)`, or None.

    `unknown_split`, the vote rules, and the range of every stored integer
    (`invalid_value`: tags, challenge, and per comment user index, sentiment,
    rating).
    """
    if record.split not in features.SPLITS:
        return "unknown_split", f"Expected one of {features.SPLITS}. Received: split={record.split!r}"
    if record.votes is not None:
        problem = votes_problem(record.votes, num_bins)
        if problem is not None:
            return problem
    for t in record.tags:
        detail = int_problem("tag", t, 0, MAX_COUNT)
        if detail is not None:
            return "invalid_value", detail
    detail = int_problem("challenge", record.challenge, features.UNKNOWN_CHALLENGE, MAX_COUNT)
    if detail is not None:
        return "invalid_value", detail
    for c in record.comments:
        for name, (low, high) in _COMMENT_RANGES.items():
            detail = int_problem(f"comment {name}", getattr(c, name), low, high)
            if detail is not None:
                return "invalid_value", detail
    return None


class IdRegistry:
    """The image ids kept so far: normalisation, control characters, duplicates and look-alikes.

    Usage: `image_id, problem = registry.check(raw_id)`; when `problem` is None and
    the record is kept, `registry.add(image_id, where)` (`where`: the line/row or
    position of the record, quoted by later duplicates).
    """

    def __init__(self):
        self._exact = {}
        self._loose = {}

    def check(self, raw_id) -> tuple:
        """Returns `(normalised_id, problem)`; `problem` is `(reason, detail)` or None."""
        image_id = features.normalize_id(raw_id)
        detail = features.id_problem(image_id)
        if detail is not None:
            return image_id, ("invalid_id", detail)
        if image_id in self._exact:
            same = "" if image_id == raw_id else " after Unicode NFC normalisation and stripping"
            return image_id, ("duplicate_id", f"same id{same} as record {self._exact[image_id]} (kept)")
        key = features.id_collision_key(image_id)
        if key in self._loose:
            first_id, where = self._loose[key]
            return image_id, (
                "duplicate_id",
                f"differs from the id {first_id!r} of record {where} (kept) only by zero-width/format characters",
            )
        return image_id, None

    def add(self, image_id: str, where=None) -> bool:
        """Registers a kept id; returns True when it holds zero-width/format characters (worth a kept note)."""
        self._exact[image_id] = where
        key = features.id_collision_key(image_id)
        self._loose.setdefault(key, (image_id, where))
        return key != image_id

    def __contains__(self, image_id) -> bool:
        return image_id in self._exact


def drop_missing_votes(items: Iterable, votes_of: Callable, reject: Callable) -> list:
    """Votes are all or nothing: when some item has votes, items without are rejected (`missing_votes`).

    Args:
        items: the kept items (e.g. `(line, record)` pairs), in order.
        votes_of: item -> its votes or None.
        reject: called with each dropped item.

    Returns:
        The items that stay.
    """
    items = list(items)
    if not any(votes_of(item) is not None for item in items):
        return items
    out = []
    for item in items:
        if votes_of(item) is None:
            reject(item)
        else:
            out.append(item)
    return out
