"""What a zoo dataset holds: presets (the paper's models, torchvision, Keras) and users' model lists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from hnn.errors import UsageError, read_user_text


@dataclass(frozen=True)
class ZooEntry:
    """One model to build: a unique name, a family label, and what to ingest."""

    name: str
    family: str
    constructor: str
    framework: str | None = None
    input_shape: list[int] | None = None


# The paper's Table 1: 22 torchvision architectures in 10 families.
PAPER_MODELS = {
    "vgg": ["vgg11", "vgg13", "vgg16"],
    "resnet": ["resnet18", "resnet34", "resnet101"],
    "mnasnet": ["mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
    "densenet": ["densenet121", "densenet161", "densenet201"],
    "squeezenet": ["squeezenet1_0", "squeezenet1_1"],
    "shufflenet": ["shufflenet_v2_x0_5", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"],
    "alexnet": ["alexnet"],
    "inception": ["inception_v3"],
    "mobilenet": ["mobilenet_v2"],
    "googlenet": ["googlenet"],
}
# torchvision module name -> family label shared with the Keras preset.
FAMILY_OF_MODULE = {"shufflenetv2": "shufflenet", "mobilenetv2": "mobilenet", "mobilenetv3": "mobilenet",
                    "swin_transformer": "swin", "vision_transformer": "vit"}
INPUT_SHAPES = {"inception_v3": [1, 3, 299, 299]}
# keras.applications name prefix -> family label matching the torchvision ones.
KERAS_FAMILIES = (
    ("ConvNeXt", "convnext"), ("DenseNet", "densenet"), ("EfficientNet", "efficientnet"),
    ("InceptionResNet", "inception_resnet"), ("InceptionV3", "inception"), ("MobileNet", "mobilenet"),
    ("NASNet", "nasnet"), ("ResNet", "resnet"), ("VGG", "vgg"), ("Xception", "xception"),
)


def torchvision_entry(name: str, family: str) -> ZooEntry:
    return ZooEntry(name=name, family=family, constructor=f"torchvision.models:{name}", framework="pytorch",
                    input_shape=INPUT_SHAPES.get(name, [1, 3, 224, 224]))


def paper_preset() -> list[ZooEntry]:
    return [torchvision_entry(name, family) for family, names in PAPER_MODELS.items() for name in names]


def torchvision_preset() -> list[ZooEntry]:
    import torchvision

    entries = []
    for name in torchvision.models.list_models(module=torchvision.models):
        module = torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]
        entries.append(torchvision_entry(name, FAMILY_OF_MODULE.get(module, module)))
    return entries


def keras_preset() -> list[ZooEntry]:
    from hnn.plugins.frontends.tf_import import import_keras

    applications = import_keras().applications
    entries = []
    for name in sorted(dir(applications)):
        family = next((label for prefix, label in KERAS_FAMILIES if name.startswith(prefix)), None)
        if family is None or not callable(getattr(applications, name)):
            continue
        # MobileNetV3 declares a dynamic input size; the others fix their own.
        shape = [1, 224, 224, 3] if name.startswith("MobileNetV3") else None
        entries.append(ZooEntry(name=f"keras_{name}", family=family, constructor=f"keras.applications:{name}",
                                framework="keras", input_shape=shape))
    return entries


def list_file_preset(path: str | Path) -> list[ZooEntry]:
    """A user's list: one model per line, ``SPEC_OR_PATH FAMILY [NAME]``; ``#`` starts a comment."""
    entries, names = [], set()
    for number, line in enumerate(read_user_text(path, UsageError, "model list").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise UsageError(f"{path}:{number}: expected 'SPEC_OR_PATH FAMILY [NAME]', got {line!r}")
        source, family = parts[0], parts[1]
        name = parts[2] if len(parts) == 3 else Path(source.split(":")[-1]).stem
        if name in names:
            raise UsageError(f"{path}:{number}: model name {name!r} used twice; add a NAME column")
        names.add(name)
        if source.startswith("torchvision.models:"):  # as in the torchvision preset: its input shape too
            entries.append(replace(torchvision_entry(source.split(":", 1)[1], family), name=name))
        else:
            entries.append(ZooEntry(name=name, family=family, constructor=source))
    if not entries:
        raise UsageError(f"{path}: no models listed")
    return entries


def transformers_preset() -> list[ZooEntry]:
    from hnn.zoo.transformer_presets import models

    return [ZooEntry(name=name, family=family, constructor=spec, framework="transformers")
            for name, family, spec in models()]


# The torchvision CNNs of every training set (scripts/train_default.sh), and the timm architectures
# of other families that the shipped checkpoints add to them (docs/RESULTS.md, "Generalization").
TRAINING_CNNS = Path(__file__).resolve().parent.parent / "hasher" / "checkpoints" / "training-models.txt"
TIMM_WIDE = Path(__file__).resolve().parent / "lists" / "timm-wide.txt"


def wide_preset() -> list[ZooEntry]:
    """The CNNs of the shipped checkpoints' training set: TRAINING_CNNS and TIMM_WIDE (124 models listed; 122
    convert). hnn 0.4's checkpoints trained on it alone."""
    return list_file_preset(TRAINING_CNNS) + list_file_preset(TIMM_WIDE)


def training_preset() -> list[ZooEntry]:
    """The shipped checkpoints' training set (hnn 0.5): CNNs and transformers together, the `wide` preset
    and the transformer families' training sizes (hnn.zoo.transformer_presets: some families and one
    size held out; 186 models convert). scripts/train_default.sh trains on it."""
    from hnn.zoo.transformer_presets import training_models

    return wide_preset() + [
        ZooEntry(name=name, family=family, constructor=spec, framework="transformers")
        for name, family, spec in training_models()]


PRESETS: dict[str, Callable[[], list[ZooEntry]]] = {
    "paper": paper_preset,
    "torchvision": torchvision_preset,
    "keras": keras_preset,
    "transformers": transformers_preset,
    "training": training_preset,
    "wide": wide_preset,
}


def resolve_preset(preset: str) -> list[ZooEntry]:
    if preset in PRESETS:
        return PRESETS[preset]()
    if Path(preset).is_file():
        return list_file_preset(preset)
    raise UsageError(f"unknown preset {preset!r}: choose {', '.join(PRESETS)} or give a model-list file")
