"""Fuzz target for the Keras path: what the worker does with an uploaded ``.keras`` file before export.

The target writes the bytes as ``upload.keras`` and runs the Keras front-end's
load (the archive check, then ``keras.saving.load_model(safe_mode=True)``). A
well-behaved outcome is a model or an :class:`~hnn.errors.HnnError`; anything
else is a finding, and so is any file the load creates outside Keras's own
temporary folder (a canary path sits in the configs the mutator writes).

Mutations start from small real Keras models built here and change what a
hostile file can change: values, types and class names in ``config.json``
(including ``module``/``class_name`` pairs that name Python callables), the
weights file's bytes, the archive's members; one time in four, raw bytes of the
zip itself. Export to ONNX is not fuzzed here: a model that loads in safe mode
is a Keras model built from Keras's own layers.
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import zipfile
from pathlib import Path

from common import Finding, finding_of, mutate_bytes

from hnn.errors import HnnError

SUFFIX = ".keras"
CANARY = "/tmp/hnn-fuzz-keras-canary"
# What a hostile config may put where a value stands.
VALUES = (0, -1, 1, 2**31, 10**12, 1e308, float("nan"), None, True, "", "x" * 1000, [], {}, [[[[]]]],
          "os", "system", "eval", "builtins", f"touch {CANARY}", "../../etc/passwd", "Lambda", "Dense", "Conv2D",
          "keras.layers", "__main__", {"class_name": "Lambda", "config": {"function": "print"}})
CLASS_NAMES = ("Dense", "Conv2D", "Lambda", "TFOpLambda", "InputLayer", "Functional", "Sequential", "system",
               "eval", "NotALayer", "Add", "Reshape", "BatchNormalization")
MODULES = ("keras.layers", "keras", "os", "builtins", "subprocess", "keras.src.models.functional", "__main__")


def seed_inputs() -> list[bytes]:
    """Small real Keras models, saved as .keras archives."""
    from hnn.plugins.frontends.tf_import import import_keras

    keras = import_keras()
    layers = keras.layers
    dense = keras.Sequential([keras.Input((8,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Add()([layers.ReLU()(x), layers.Conv2D(4, 1)(inputs)])
    conv = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(x)))
    seeds = []
    with tempfile.TemporaryDirectory(prefix="hnn-fuzz-seeds-") as folder:
        for index, model in enumerate((dense, conv)):
            path = Path(folder) / f"seed{index}.keras"  # Keras saves to a path, not a buffer
            model.save(path)
            seeds.append(path.read_bytes())
    return seeds


def mutate(data: bytes, rng: random.Random, rounds: int = 3) -> bytes:
    """A few mutations of the archive's members; raw byte edits when it is not a readable zip."""
    if rng.random() < 0.25:
        return mutate_bytes(data, rng)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
    except Exception:
        return mutate_bytes(data, rng)
    for _ in range(rng.randint(1, rounds)):
        choice = rng.random()
        if choice < 0.6 and "config.json" in members:
            members["config.json"] = _mutate_json(members["config.json"], rng)
        elif choice < 0.75 and members:
            name = rng.choice(sorted(members))
            members[name] = mutate_bytes(members[name], rng)
        elif choice < 0.85 and members:
            del members[rng.choice(sorted(members))]
        else:
            members[rng.choice(("extra.bin", "assets/x", "../escape", "/absolute"))] = bytes(rng.randrange(64))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _mutate_json(raw: bytes, rng: random.Random) -> bytes:
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return mutate_bytes(raw, rng)
    places = []  # (container, key) of every value in the document

    def walk(value) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            places.append((value, key))
            walk(child)

    walk(document)
    if not places:
        return raw
    container, key = rng.choice(places)
    if key == "class_name":
        container[key] = rng.choice(CLASS_NAMES)
    elif key == "module":
        container[key] = rng.choice(MODULES)
    elif rng.random() < 0.1 and isinstance(container, dict):
        del container[key]
    else:
        container[key] = rng.choice(VALUES)
    return json.dumps(document).encode()


def run_one(data: bytes, workdir: Path) -> Finding | None:
    """Load ``data`` as an uploaded .keras file in safe mode; a Finding when it fails as a user must not see."""
    from hnn.plugins.frontends.keras_frontend import _load_file

    path = Path(workdir) / "upload.keras"
    path.write_bytes(data)
    canary = Path(CANARY)
    try:
        _load_file(path, trust=False)
    except (HnnError, MemoryError):
        pass
    except Exception as exc:  # noqa: BLE001 - the point is to catch what nobody expected
        return finding_of(exc)
    if canary.exists():
        canary.unlink()
        return Finding("CodeRan at keras load", f"{CANARY} was created while loading")
    return None
