"""Shim of `python -m tfaesthetic.records.build_ava` (the builder ships in the package; this path stays for checkouts)."""

from absl import app

from tfaesthetic.records.build_ava import main

if __name__ == "__main__":
    app.run(main)
