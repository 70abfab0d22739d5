"""Reading a Hugging Face model folder safely, before any framework sees it.

A folder as ``save_pretrained`` writes it: ``config.json`` and the weights, as
``model.safetensors`` or as shards listed by ``model.safetensors.index.json``.
Everything here is plain file reading (no torch, no transformers), so a hostile
folder is refused with a one-line reason before a library parses it:

- ``config.json``: a JSON object of bounded size naming a ``model_type``; one
  that asks for remote code (``auto_map``) is refused, since hnn never imports
  a Python file from a model folder;
- every weight file lies inside the folder (no link out, no ``../`` in a shard
  index), and every safetensors header tells the truth: offsets inside the file,
  each tensor's byte span equal to its shape times its dtype's size, no overlap;
- pickled weights (``pytorch_model.bin``) are named so the front-end can refuse
  them without ``--trust``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path

from hnn.errors import InputError, summary

CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
MAX_CONFIG_BYTES = 4 * 1024**2
MAX_HEADER_BYTES = 100 * 1024**2  # the safetensors library's own limit
MAX_RANK = 8
# safetensors dtype names -> numpy (BF16 through ml_dtypes, which onnx installs; fp8 is not read)
NUMPY_DTYPES = {"F16": "float16", "F32": "float32", "F64": "float64", "BF16": "bfloat16", "I8": "int8", "U8": "uint8",
                "I16": "int16", "I32": "int32", "I64": "int64", "BOOL": "bool"}
# Bytes per element of each safetensors dtype (the format's own list).
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors file, as its header declares it (checked against the file)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # byte offsets in the file, past the header
    end: int
    data_start: int  # where the file's tensor data begins (past the 8-byte length and the header)


@dataclass(frozen=True)
class ModelFolder:
    """What a checked folder holds: its config, and its weight files (empty for a config alone)."""

    path: Path
    config: dict
    safetensors: tuple[Path, ...]
    pickled: tuple[Path, ...]
    headers: tuple[tuple[TensorEntry, ...], ...] = ()  # each safetensors file's checked tensors, in order


def numpy_dtype(entry: TensorEntry, path: Path):
    """The numpy dtype of a checked tensor's values (little-endian, as safetensors stores them);
    InputError for a dtype hnn does not read."""
    if entry.dtype not in NUMPY_DTYPES:
        raise InputError(f"{path.name}: tensor {entry.name!r} is {entry.dtype}, which hnn does not read")
    import numpy as np  # here: reading a folder's config and headers needs no numpy

    if entry.dtype == "BF16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(NUMPY_DTYPES[entry.dtype]).newbyteorder("<")


def is_model_folder(source) -> bool:
    """A folder with a ``config.json``: what ``save_pretrained`` writes (weights or not)."""
    try:
        return Path(source).is_dir() and (Path(source) / CONFIG).is_file()
    except (OSError, TypeError, ValueError):
        return False


def read_folder(path: Path) -> ModelFolder:
    """The checked contents of a model folder; InputError with the reason when anything is off."""
    if not path.is_dir():
        raise InputError(f"{path}: no such directory")
    config = read_config(path / CONFIG)
    if (path / SAFETENSORS_INDEX).exists():
        shards = shard_files(path, path / SAFETENSORS_INDEX)
    elif (path / SAFETENSORS).exists():
        shards = (inside(path, SAFETENSORS),)
    else:
        shards = ()
    headers = tuple(tuple(read_header(shard)) for shard in shards)
    pickled = tuple(inside(path, name) for name in PICKLED_WEIGHTS if (path / name).exists())
    return ModelFolder(path=path, config=config, safetensors=shards, pickled=pickled, headers=headers)


def read_config(path: Path) -> dict:
    """config.json as a dict, refused when it is not a bounded JSON object naming its model type."""
    folder = path.parent
    inside(folder, path.name)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes is over the {MAX_CONFIG_BYTES}-byte limit for a config")
    try:
        config = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{path}: not JSON ({summary(exc)})") from None
    if not isinstance(config, dict):
        raise InputError(f"{path}: a config is a JSON object, not {type(config).__name__}")
    if "auto_map" in config:
        raise InputError(f"{path}: the config asks for remote code (auto_map: {sorted(config['auto_map'])!s:.80}); "
                         "hnn never imports Python files from a model folder")
    if not isinstance(config.get("model_type"), str) or not config["model_type"]:
        raise InputError(f"{path}: the config names no model_type; hnn builds architectures that transformers knows")
    architectures = config.get("architectures")
    if architectures is not None and not (isinstance(architectures, list)
                                          and all(isinstance(name, str) for name in architectures)):
        raise InputError(f"{path}: 'architectures' is a list of class names")
    return config


def inside(folder: Path, name: str) -> Path:
    """``folder/name``, refused when the name or a link leads out of the folder."""
    if not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise InputError(f"{folder}: {name!r} is not a file name inside the model folder")
    target = folder / name
    if target.is_symlink() or not target.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"{target}: a link; hnn reads only files that lie inside the model folder")
    if not target.is_file():
        raise InputError(f"{target}: no such file")
    return target


def shard_files(folder: Path, index_path: Path) -> tuple[Path, ...]:
    """The shards a ``model.safetensors.index.json`` lists, each once, in a fixed order."""
    inside(folder, index_path.name)
    if index_path.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"{index_path}: {index_path.stat().st_size} bytes is over the {MAX_CONFIG_BYTES}-byte "
                         "limit for a shard index")
    try:
        index = json.loads(index_path.read_bytes())
        weight_map = index["weight_map"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{index_path}: not a shard index (a JSON object with a weight_map): {exc}") from None
    if not isinstance(weight_map, dict) or not weight_map or not all(
            isinstance(shard, str) for shard in weight_map.values()):
        raise InputError(f"{index_path}: the weight_map maps tensor names to shard file names")
    return tuple(inside(folder, name) for name in sorted(set(weight_map.values())))


def read_header(path: Path, max_header_bytes: int = MAX_HEADER_BYTES) -> list[TensorEntry]:
    """The tensors a safetensors file declares, refused unless the header matches the file byte for byte."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        start = handle.read(8)
        if len(start) < 8:
            raise InputError(f"{path}: truncated: too short for a safetensors header")
        (length,) = struct.unpack("<Q", start)
        if length > max_header_bytes or 8 + length > size:
            raise InputError(f"{path}: the header declares {length} bytes; the file holds {size}")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
        raise InputError(f"{path}: the safetensors header is not JSON ({summary(exc)})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - length
    entries = sorted((_entry(path, name, fields, 8 + length) for name, fields in header.items()),
                     key=lambda e: e.begin)
    position = 0
    for entry in entries:
        if entry.begin != position:
            raise InputError(f"{path}: tensor {entry.name!r} starts at byte {entry.begin}, not {position}: "
                             "the header's offsets overlap or leave gaps")
        position = entry.end
    if position != data_bytes:
        problem = "truncated" if position > data_bytes else "longer than its header says"
        raise InputError(f"{path}: {problem}: the header declares {position} bytes of tensors, the file holds {data_bytes}")
    return entries


def _entry(path: Path, name: str, fields, data_start: int) -> TensorEntry:
    try:
        dtype, shape, (begin, end) = fields["dtype"], fields["shape"], fields["data_offsets"]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: tensor {name!r}: a header entry has dtype, shape and data_offsets") from None
    if dtype not in DTYPE_BYTES:
        raise InputError(f"{path}: tensor {name!r} has an unknown dtype {dtype!r}")
    # No real tensor has more than MAX_RANK dimensions or one of 2^40 elements; numpy cannot take either.
    if not (isinstance(shape, list) and len(shape) <= MAX_RANK
            and all(isinstance(d, int) and 0 <= d < 1 << 40 for d in shape)):
        raise InputError(f"{path}: tensor {name!r} has a bad shape {str(shape):.80}")
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
        raise InputError(f"{path}: tensor {name!r} has bad data offsets {[begin, end]!r}")
    if end - begin != prod(shape) * DTYPE_BYTES[dtype]:
        raise InputError(f"{path}: tensor {name!r} is {dtype} of shape {shape}, "
                         f"{prod(shape) * DTYPE_BYTES[dtype]} bytes, but its offsets span {end - begin}")
    return TensorEntry(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end, data_start=data_start)
