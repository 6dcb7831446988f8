"""Hyperparameter tuning: HyperModels, search spaces and the search behind `python -m tfaesthetic.tune`.

- `hypermodels`: the KerasTuner HyperModels of MRACNN and CFAN (every trial builds and
  trains through the config and the trainer);
- `search_space`: reads and validates the search-space files;
- `search`: tuner, objective, the search itself and its results table;
- `spaces/<model>.json`: the default search-space files, shipped as package data (the
  repository's top-level `tuning/` is a link to this folder, so there is one copy of them).

Importing this package imports no TensorFlow (the CLI reads `SPACES_DIR` before
`console.quiet_startup()`).
"""

import os

#: Folder of the default search-space files (`<model>.json`), inside the installed package.
SPACES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spaces")
