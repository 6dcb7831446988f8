"""Serving: the SavedModel export, the predictor behind `python -m tfaesthetic.predict`, pictures.

- `export`: `ServingFunctions` (raw bytes and strings -> scores, with the image checks
  of `tfaesthetic.images` inside the graph) and `export_model` (a TF Serving
  SavedModel under `<export_dir>/<model>/<version>/` with its sidecar);
- `predictor`: `load_predictor` (from an export, a `.keras` file or a run directory)
  and `predict` (image files -> `predictions.json` + PNGs);
- `visualize`: attention overlays and score-distribution plots.

Importing this package imports nothing else (`export` imports TensorFlow).
"""
