"""Hyperparameter tuning: the default search spaces ship here as package data.

`spaces/<model>.json` are the default search-space files of `python -m
tfaesthetic.tune` (the repository's top-level `tuning/` is a link to this folder, so
there is one copy of them); `tfaesthetic.search_space` reads and validates them.
"""

import os

#: Folder of the default search-space files (`<model>.json`), inside the installed package.
SPACES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spaces")
