"""Runs exported tfaesthetic SavedModels in a fresh process, as TF Serving would.

Imports only TensorFlow and tensorflow_text (whose ops the serving graph uses), never
tfaesthetic. Usage:

    python tests/_serving/run_saved_model.py REQUESTS.json OUT_DIR

REQUESTS.json is a list of `{"name", "export_dir", "signature", ...}` objects with
either

- `"body"`: a TF Serving REST `:predict` body, row format
  `{"instances": [{"image_bytes": {"b64": "..."}, "comments": "..."}, ...]}` or
  columnar format `{"inputs": {"image_bytes": [{"b64": "..."}], ...}}`, decoded the
  way TF Serving's JSON codec does (a `{"b64": ...}` object becomes the decoded
  bytes, other strings their UTF-8 bytes, numbers take the signature's dtype, rows
  are stacked along a new first axis); or
- `"hex"`: `{input_name: [hex-encoded bytes, ...]}`, passed to the signature as
  string tensors without any JSON codec (the plain raw-input call).

For each request, `OUT_DIR/<name>.npz` gets one array per output, or
`OUT_DIR/<name>.error` the error type and message. `OUT_DIR/modules.txt` lists the
imported top-level modules at the end.
"""

import base64
import json
import os
import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tf-text ops of the serving graph)


def _decode_value(value):
    if isinstance(value, dict):
        if set(value) != {"b64"}:
            raise ValueError(f"Expected an object of the form {{'b64': ...}}. Received keys {sorted(value)}")
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    return value


def decode_rest_body(body, specs):
    """REST body -> dict of batched tensors matching the signature's input specs."""
    if "instances" in body:
        rows = body["instances"]
        columns = {name: [_decode_value(row[name]) for row in rows] for name in specs}
    elif "inputs" in body:
        columns = {name: _decode_value(body["inputs"][name]) for name in specs}
    else:
        raise ValueError(f"Expected 'instances' or 'inputs' in the request. Received keys {sorted(body)}")
    tensors = {}
    for name, spec in specs.items():
        if spec.dtype == tf.string:
            tensors[name] = tf.constant(np.array(columns[name], dtype=object), tf.string)
        else:
            tensors[name] = tf.constant(np.asarray(columns[name]), spec.dtype)
    return tensors


def main(argv):
    requests_path, out_dir = argv[1:3]
    with open(requests_path, encoding="utf-8") as f:
        requests = json.load(f)
    loaded = {}
    for request in requests:
        path = request["export_dir"]
        if path not in loaded:
            loaded[path] = tf.saved_model.load(path)
        signature = loaded[path].signatures[request.get("signature", "serving_default")]
        specs = signature.structured_input_signature[1]
        try:
            if "body" in request:
                inputs = decode_rest_body(request["body"], specs)
            else:
                inputs = {
                    k: tf.constant(np.array([bytes.fromhex(v) for v in vs], dtype=object), tf.string)
                    for k, vs in request["hex"].items()
                }
            outputs = signature(**inputs)
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            with open(os.path.join(out_dir, request["name"] + ".error"), "w", encoding="utf-8") as f:
                f.write(f"{type(e).__name__}: {getattr(e, 'message', str(e))}")
            continue
        np.savez(os.path.join(out_dir, request["name"] + ".npz"), **{k: v.numpy() for k, v in outputs.items()})
    with open(os.path.join(out_dir, "modules.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(sorted({m.split(".")[0] for m in sys.modules})))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
