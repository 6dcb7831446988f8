"""Counted, reasoned skips: nothing a source drops is lost silently (SPEC §2.3).

Every source and the writer share one `Rejections` per build. A *rejection* removes
something (an image record or one comment) and is written to `rejected.jsonl`
beside the manifest with its reason, file and record number. A *kept note* counts
something kept after a documented repair (e.g. non-UTF-8 bytes replaced); it is
counted in the manifest, and also listed in `rejected.jsonl` with `"action": "kept"`
so that a user can find the record.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Optional


class Rejections:
    """Collects skipped and repaired items of one records build."""

    def __init__(self):
        self.entries = []
        self.rejected = collections.Counter()
        self.kept = collections.Counter()

    def reject(
        self,
        reason: str,
        *,
        source: str = "",
        record: Optional[int] = None,
        image_id: str = "",
        detail: str = "",
        level: str = "image",
    ) -> None:
        """Records that an item was dropped.

        Args:
            reason: a short snake_case reason, e.g. "undecodable_image".
            source: the file the item came from.
            record: the 1-based line or row number in `source`, when known.
            image_id: the image id, when known.
            detail: a human-readable detail (exception text, offending value).
            level: "image" (a whole image record dropped) or "comment".
        """
        self.rejected[f"{level}:{reason}"] += 1
        self._add("rejected", reason, source, record, image_id, detail, level)
        logging.debug("rejected %s %s %s:%s %s", level, reason, source, record, detail)

    def keep(
        self,
        note: str,
        *,
        source: str = "",
        record: Optional[int] = None,
        image_id: str = "",
        detail: str = "",
        level: str = "comment",
    ) -> None:
        """Records that an item was kept after a documented repair or rule."""
        self.kept[f"{level}:{note}"] += 1
        self._add("kept", note, source, record, image_id, detail, level)

    def _add(self, action, reason, source, record, image_id, detail, level):
        entry = {"action": action, "level": level, "reason": reason}
        if source:
            entry["source"] = str(source)
        if record is not None:
            entry["record"] = int(record)
        if image_id:
            entry["image_id"] = str(image_id)
        if detail:
            entry["detail"] = str(detail)[:500]
        self.entries.append(entry)

    @property
    def counts(self) -> dict:
        """`{"rejected": {...}, "kept": {...}}`, for the manifest."""
        return {"rejected": dict(sorted(self.rejected.items())), "kept": dict(sorted(self.kept.items()))}

    def write(self, path: str) -> None:
        """Writes one JSON object per line (an empty file when nothing happened)."""
        with open(path, "w", encoding="utf-8") as f:
            for entry in self.entries:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def summary(self) -> str:
        """A one-line human summary for the builders' output."""
        parts = [f"{k}={v}" for k, v in sorted(self.rejected.items())]
        kept = [f"{k}={v}" for k, v in sorted(self.kept.items())]
        return "rejected: " + (", ".join(parts) or "none") + "; kept after repair: " + (", ".join(kept) or "none")
