"""Shim of `python -m tfaesthetic.records.build_demo` (the builder ships in the package; this path stays for checkouts)."""

from absl import app

from tfaesthetic.records.build_demo import main

if __name__ == "__main__":
    app.run(main)
