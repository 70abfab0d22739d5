"""Checkpoints: one file with weights, config, vocabulary, family names, rule-set digest, format version.

Saved with ``torch.save`` of plain containers and tensors only, and loaded with
``torch.load(weights_only=True)``, which refuses anything else: a checkpoint
can never run code when loaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hnn.errors import InputError

FORMAT = "hnn-checkpoint"
VERSION = 1
DEFAULT_DIR = Path(__file__).parent / "checkpoints"


def default_checkpoint(bits: int | None = None) -> Path:
    """The shipped checkpoint for ``bits`` (default 64)."""
    path = DEFAULT_DIR / f"hnn-net-{bits or 64}.pt"
    if not path.exists():
        shipped = sorted(p.name for p in DEFAULT_DIR.glob("hnn-net-*.pt"))
        raise InputError(f"no shipped checkpoint for {bits} bits (shipped: {', '.join(shipped) or 'none'}); "
                         "train one with `hnn train`")
    return path


@dataclass
class Checkpoint:
    model: object  # HNNNet
    vocabulary: list[str]
    families: list[str]
    rules: str
    rules_digest: str
    meta: dict
    digest: str  # of the file: an index refuses codes from another checkpoint

    @property
    def bits(self) -> int:
        return self.model.config.bits


def save_checkpoint(path: str | Path, model, vocabulary, families, rules: str, rules_digest: str, meta: dict):
    import torch

    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "vocabulary": list(vocabulary),
        "families": list(families),
        "rules": rules,
        "rules_digest": rules_digest,
        "meta": meta,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, device: str = "cpu") -> Checkpoint:
    import torch

    from hnn.hasher.model import HNNNet, HNNNetConfig

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    raw = path.read_bytes()
    try:
        import io

        payload = torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a loadable hnn checkpoint ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an hnn checkpoint")
    if payload.get("version") != VERSION:
        raise InputError(f"{path}: checkpoint format version {payload.get('version')!r}; this hnn reads {VERSION}")
    try:
        model = HNNNet(HNNNetConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: checkpoint does not match the HNN-Net architecture ({exc})") from None
    model.eval().to(device)
    return Checkpoint(model=model, vocabulary=payload["vocabulary"], families=payload["families"],
                      rules=payload["rules"], rules_digest=payload["rules_digest"], meta=payload.get("meta", {}),
                      digest=hashlib.sha256(raw).hexdigest())


def rules_digest(rule_set) -> str:
    return hashlib.sha256("\n".join(str(rule) for rule in rule_set.rules).encode()).hexdigest()
