"""Train/test splits of a zoo dataset, by graph name (manifest ``models`` and ``augmented``).

* ``paper``: the paper's protocol. The augmented set is ordered by augmentation
  index, then by the model's position in the manifest (so it cycles through
  all models before repeating one); the first 80% is train, the last 20% test.
  With 10 augmentations that puts augmentations 0-7 of every model in train
  and 8-9 in test: every test model has augmented copies in training. The
  original graphs belong to train.
* ``models``: every fifth model in manifest order (positions 4, 9, ...) is held
  out whole: it, and all its augmentations, are test; nothing of it is trained on.
* ``families``: every fifth family in sorted order (positions 4, 9, ...) is held
  out whole, with all its models and their augmentations.
* ``families=A,B``: the named families are held out whole (a checkpoint for
  benchmarks/generalization.py that has never seen the families a query set has).

With fewer than five models (or families) but at least two, the last one is held out.
"""

from __future__ import annotations

from hnn.errors import UsageError

SPLITS = ("paper", "models", "families", "families=A,B")
NAMED_FAMILIES = "families="
TRAIN_SHARE = 0.8
HOLDOUT_EVERY = 5


def every_fifth(items: list[str]) -> list[str]:
    """Positions 4, 9, ...; with fewer than five items (but two or more), the last one."""
    chosen = [item for i, item in enumerate(items) if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1]
    return chosen or (items[-1:] if len(items) > 1 else [])


def split(manifest: dict, kind: str) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}`` graph names for split ``kind``."""
    models = [m["name"] for m in manifest["models"]]
    augmented = manifest["augmented"]
    if kind == "paper":
        position = {name: i for i, name in enumerate(models)}
        ordered = sorted(augmented, key=lambda a: (a["index"], position.get(a["source"], len(models))))
        cut = round(TRAIN_SHARE * len(ordered))
        # copier variants train: the paper's test set is augmentations only
        variants = [v["name"] for v in manifest.get("variants", [])]
        return {"train": models + [a["name"] for a in ordered[:cut]] + variants,
                "test": [a["name"] for a in ordered[cut:]]}
    if kind == "models":
        held_out = set(every_fifth(models))
    elif kind == "families":
        held = set(every_fifth(sorted({m["family"] for m in manifest["models"]})))
        held_out = {m["name"] for m in manifest["models"] if m["family"] in held}
    elif kind.startswith(NAMED_FAMILIES):
        held = set(kind.removeprefix(NAMED_FAMILIES).split(","))
        unknown = sorted(held - {m["family"] for m in manifest["models"]})
        if unknown:
            raise UsageError(f"split {kind!r}: the dataset has no family {', '.join(unknown)}")
        held_out = {m["name"] for m in manifest["models"] if m["family"] in held}
    else:
        raise UsageError(f"unknown split {kind!r}; choose from {', '.join(SPLITS)}")
    train = [name for name in models if name not in held_out]
    derived = augmented + manifest.get("variants", [])
    train += [a["name"] for a in derived if a["source"] not in held_out]
    test = [name for name in models if name in held_out] + [a["name"] for a in derived if a["source"] in held_out]
    return {"train": train, "test": test}
