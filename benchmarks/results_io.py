"""How the scripts in `benchmarks/` write their results: one JSON (and a Markdown table) per run.

- `run_facts()`: the host, the UTC date and the platform, the head of every result.
- `utc_stamp()`: a UTC time stamp for file names (`20261201T120000Z`).
- `write_results(out_dir, stem, result, markdown=None)`: writes `<out_dir>/<stem>.json`
  (indented; values JSON cannot hold are written as `str`) and, when given,
  `<out_dir>/<stem>.md`; prints `wrote ...` and returns the JSON's path.

The scripts import it as `from benchmarks import results_io` (each puts the
repository root on `sys.path`). Results go to `benchmarks/results/`, which is not
committed.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
from typing import Optional


def run_facts() -> dict:
    """Where and when the run was made: `host`, `date` (UTC, ISO 8601, seconds) and `platform`."""
    return {
        "host": socket.gethostname(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
    }


def utc_stamp() -> str:
    """The current UTC time as `YYYYMMDDTHHMMSSZ` (sorts by time in a file name)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_results(out_dir: str, stem: str, result: dict, markdown: Optional[str] = None) -> str:
    """Writes `result` to `<out_dir>/<stem>.json` (and `markdown` to `<stem>.md`); returns the JSON's path."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    if markdown is not None:
        with open(base + ".md", "w", encoding="utf-8") as f:
            f.write(markdown.rstrip("\n") + "\n")
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"wrote {base}.md and {base}.json" if markdown is not None else f"wrote {base}.json")
    return base + ".json"
