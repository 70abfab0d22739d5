"""Copier variants of a zoo model: the same model as a copier would re-export it, a training positive.

A node deletion (hnn.zoo.augment) is one kind of derivative. A copier who takes a model and
uploads it as their own more often re-exports it than edits it: with the other torch exporter,
at another input resolution, with a new classifier head. ``hnn zoo build --variants`` converts
each model of the list so too and records the graphs as of the same source, which every loss
that reads sources (the source head, the code-form topology targets) then treats as copies.

Variants are made for torch models only (torchvision and timm specs): those are the front-end
whose exporter and factory keywords the variants change.
"""

from __future__ import annotations

from hnn.zoo.presets import ZooEntry

VARIANTS = ("head", "resolution", "dynamo")
# A head swap: the classes of a small fine-tuning task (CIFAR-10's, say).
HEAD_CLASSES = 10
# A resolution variant's extra pixels per side: 224 -> 256 (every stride of a CNN divides both).
RESOLUTION_STEP = 32
# Keyword of the input size, for factories whose position embeddings are built for one size.
SIZE_KEYWORDS = {"torchvision": "image_size", "timm": "img_size"}
DEFAULT_SIDE = 224


def parse_variants(text: str) -> tuple[str, ...]:
    """``"head,dynamo"`` -> ("head", "dynamo"), in VARIANTS' order; an unknown name is an error."""
    from hnn.errors import UsageError

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    return tuple(name for name in VARIANTS if name in names)


def applies(entry: ZooEntry) -> bool:
    return entry.framework in (None, "pytorch") and entry.constructor.split(".")[0] in SIZE_KEYWORDS


def _with_keyword(spec: str, key: str, value) -> str:
    module, _, rest = spec.partition(":")
    attribute, _, arguments = rest.partition(":")
    pairs = [pair for pair in arguments.split(",") if pair and not pair.startswith(f"{key}=")]
    return f"{module}:{attribute}:" + ",".join(pairs + [f"{key}={value}"])


def conversions(entry: ZooEntry, variant: str) -> list[tuple[str, dict]]:
    """(constructor, ingest options) to try in order for ``variant`` of ``entry``; the first that converts wins.

    A resolution variant is first the same factory at the larger input; then, for a model whose
    position embeddings fix its input size (ViT), the factory told the size; then the other
    exporter, which TorchScript's adaptive pooling needs where the feature map is no multiple of the
    pooled size (AlexNet and the VGGs at 256): what a copier would do next in each case."""
    shape = list(entry.input_shape or [1, 3, DEFAULT_SIDE, DEFAULT_SIDE])
    base = {"framework": "pytorch", "input_shape": shape}
    if variant == "head":
        return [(_with_keyword(entry.constructor, "num_classes", HEAD_CLASSES), base)]
    if variant == "dynamo":
        return [(entry.constructor, {**base, "exporter": "dynamo"})]
    if variant == "resolution":
        side = shape[-1] + RESOLUTION_STEP
        larger = {**base, "input_shape": shape[:-2] + [side, side]}
        keyword = SIZE_KEYWORDS[entry.constructor.split(".")[0]]
        return [(entry.constructor, larger), (_with_keyword(entry.constructor, keyword, side), larger),
                (entry.constructor, {**larger, "exporter": "dynamo"})]
    raise ValueError(f"unknown variant {variant!r}")
