"""Reading a records directory's side files: the manifest, the vocabulary, the tag names.

The one place the trainer, the evaluator, the exporter and `predict` read them from;
a missing or unreadable manifest is a `ConfigError` naming `--records`.
"""

from __future__ import annotations

import os
from typing import Optional

from tfaesthetic import config as config_lib
from tfaesthetic.records import writer


def read_manifest(records_dir: str) -> dict:
    """The records' manifest; a missing or unreadable one raises `ConfigError` naming `--records`."""
    if not os.path.exists(os.path.join(records_dir, writer.MANIFEST)):
        raise config_lib.ConfigError(f"No manifest.json in the records directory. Received: --records={records_dir}")
    try:
        return writer.read_manifest(records_dir)
    except ValueError as e:
        raise config_lib.ConfigError(f"Unreadable records. Received: --records={records_dir} ({e})") from e


def vocabulary_words(records_dir: str) -> list:
    """The vocabulary words in id order (line i of `vocab.txt` is token id i + 2, after padding and OOV)."""
    with open(os.path.join(records_dir, writer.VOCAB_FILE), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def tag_names(records_dir: str) -> Optional[list]:
    """Tag names by tag id from `tags.tsv`, or None when the records have none."""
    path = os.path.join(records_dir, writer.TAGS_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if rows and rows[0][0] in ("index", "id", "tag_id"):  # header line
        rows = rows[1:]
    return [row[-1] for row in rows]
