"""Runs an exported tfaesthetic SavedModel in a fresh process, as TF Serving would.

Imports only TensorFlow and tensorflow_text (whose ops the serving graph uses), never
tfaesthetic. Usage:

    python tests/_serving/run_saved_model.py SAVED_MODEL_DIR REQUEST.json OUT.npz [SIGNATURE]

REQUEST.json is a TF Serving REST `:predict` body: row format
`{"instances": [{"image_bytes": {"b64": "..."}, "comments": "..."}, ...]}` or columnar
format `{"inputs": {"image_bytes": [{"b64": "..."}], ...}}`. It is decoded the way
TF Serving's JSON codec does: a `{"b64": ...}` object becomes the decoded bytes,
strings become string tensors, numbers take the signature's dtype, and the rows are
batched along a new first axis. The outputs are written to OUT.npz (one array per
output name); an error is printed as `ERROR <type>: <message>` with exit status 3.
"""

import base64
import json
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


def decode_request(body, signature):
    """REST body -> dict of batched tensors matching `signature`'s inputs."""
    specs = signature.structured_input_signature[1]
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
    export_dir, request_path, out_path = argv[1:4]
    signature_name = argv[4] if len(argv) > 4 else "serving_default"
    with open(request_path, encoding="utf-8") as f:
        body = json.load(f)
    loaded = tf.saved_model.load(export_dir)
    signature = loaded.signatures[signature_name]
    try:
        outputs = signature(**decode_request(body, signature))
    except (tf.errors.InvalidArgumentError, ValueError) as e:
        print(f"ERROR {type(e).__name__}: {getattr(e, 'message', str(e))}")
        return 3
    if "tfaesthetic" in sys.modules or any(m.startswith("tfaesthetic.") for m in sys.modules):
        print("ERROR tfaesthetic was imported by the serving process")
        return 4
    np.savez(out_path, **{k: v.numpy() for k, v in outputs.items()})
    print("OK", sorted(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
