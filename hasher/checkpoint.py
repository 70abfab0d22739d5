"""Checkpoints: one ``.npz`` file with weights, config, vocabulary, families, rule-set digest, version.

The file holds only numeric arrays and one JSON document, and is read with
``numpy.load(allow_pickle=False)``: loading a checkpoint can never run code,
and needs no torch (hashing on the CPU runs the numpy forward pass of
:mod:`hnn.hasher.numpy_model`). The torch model is built from the same arrays
when training or hashing on a GPU.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hnn.errors import InputError
from hnn.hasher.features import SIZES

FORMAT = "hnn-checkpoint"
VERSION = 1
DEFAULT_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_BITS = 64
META_KEY = "__meta__"
PARAM_PREFIX = "param/"


def default_checkpoint(bits: int | None = None) -> Path:
    """The shipped checkpoint for ``bits`` (default 64)."""
    path = DEFAULT_DIR / f"hnn-net-{bits or DEFAULT_BITS}.npz"
    if not path.exists():
        shipped = sorted(p.name for p in DEFAULT_DIR.glob("hnn-net-*.npz"))
        raise InputError(f"no shipped checkpoint for {bits or DEFAULT_BITS} bits (shipped: "
                         f"{', '.join(shipped) or 'none'}); train one with `hnn train`")
    return path


def default_rules() -> str:
    """The rule set the shipped checkpoints merge with: what `hnn ingest` applies by default, so
    that its output can be hashed as it is."""
    return load_checkpoint(default_checkpoint()).rules


@dataclass
class Checkpoint:
    arrays: dict[str, np.ndarray]
    config: dict
    vocabulary: list[str]
    families: list[str]
    rules: str
    rules_digest: str
    meta: dict
    digest: str  # of the file: an index refuses codes from another checkpoint
    _torch_models: dict = field(default_factory=dict, repr=False)

    @property
    def bits(self) -> int:
        return int(self.config["bits"])

    @property
    def size_features(self) -> bool:
        return bool(self.config.get("size_features", False))  # absent from checkpoints made before it

    @property
    def sizes(self) -> str:
        return str(self.config.get("sizes", "absolute"))  # likewise (hnn.hasher.features.SIZES)

    @property
    def wl_bins(self) -> int:
        return int(self.config.get("wl_bins", 0))  # likewise (hnn.hasher.model.HNNNetConfig)

    def torch_model(self, device: str = "cpu"):
        """The torch HNNNet with these weights, in eval mode (imports torch)."""
        if device not in self._torch_models:
            import torch

            from hnn.hasher.model import HNNNet, HNNNetConfig

            model = HNNNet(HNNNetConfig.from_dict(self.config))
            model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.arrays.items()})
            self._torch_models[device] = model.eval().to(device)
        return self._torch_models[device]


def save_checkpoint(path: str | Path, model, vocabulary, families, rules: str, rules_digest: str,
                    meta: dict) -> None:
    document = {"format": FORMAT, "version": VERSION, "config": model.config.to_dict(),
                "vocabulary": list(vocabulary), "families": list(families), "rules": rules,
                "rules_digest": rules_digest, "meta": meta}
    arrays = {PARAM_PREFIX + k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    arrays[META_KEY] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    raw = path.read_bytes()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        document = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (ValueError, KeyError, OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not an hnn checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{path}: not an hnn checkpoint")
    if document.get("version") != VERSION:
        raise InputError(f"{path}: checkpoint format version {document.get('version')!r}; this hnn reads {VERSION}")
    try:
        checkpoint = Checkpoint(
            arrays={k[len(PARAM_PREFIX):]: v for k, v in arrays.items() if k.startswith(PARAM_PREFIX)},
            config=document["config"], vocabulary=document["vocabulary"], families=document["families"],
            rules=document["rules"], rules_digest=document["rules_digest"], meta=document.get("meta", {}),
            digest=hashlib.sha256(raw).hexdigest(),
        )
    except KeyError as exc:
        raise InputError(f"{path}: checkpoint lacks {exc}") from None
    if checkpoint.sizes not in SIZES:
        raise InputError(f"{path}: checkpoint sizes {checkpoint.sizes!r} is not one of {', '.join(SIZES)}")
    return checkpoint

