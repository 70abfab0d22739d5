"""Rule files (YAML or TOML) compiled into a :class:`~hnn.rules.engine.RuleSet`.

Format (docs/rules.md has more examples)::

    name: paper
    rules:
      - name: ConvBnRelu
        chain: [Conv, BatchNormalization, Relu]
      - name: ConvAct
        chain: ["Conv", "BatchNormalization?", "Relu|Clip|LeakyRelu"]
      - name: DepthwiseConvBn
        chain:
          - {op: Conv, attrs: {group: channels}}
          - BatchNormalization

A chain element is a string (``A|B`` for alternatives, a trailing ``?`` for
optional) or a mapping with ``op`` (the same notation), and optionally
``optional: true`` and ``attrs``. Errors name the file, the rule and the
field (and the line where the YAML parser gives one); they exit with code 2.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from hnn.errors import UsageError, read_user_text
from hnn.rules.engine import Element, Rule, RuleSet

DEFAULT_RULES = Path(__file__).parent / "default.yaml"
RULE_FIELDS = {"name", "chain", "description"}
ELEMENT_FIELDS = {"op", "optional", "attrs"}
FILE_FIELDS = {"name", "description", "rules"}


class RuleFileError(UsageError):
    """A rule file does not parse or validate."""


def known_ops() -> set[str]:
    """ONNX op types (every domain onnx knows) plus GlobalAveragePool-style canonical names."""
    import onnx.defs

    return {schema.name for schema in onnx.defs.get_all_schemas_with_history()}


def load_rule_file(path: str | Path) -> RuleSet:
    path = Path(path)
    text = read_user_text(path, RuleFileError, "rule file")
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RuleFileError(f"{path}: bad TOML: {exc}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise RuleFileError(f"{path}: bad YAML{where}: {problem}") from None
    return compile_rules(data, origin=str(path))


def compile_rules(data: Any, origin: str, ops: set[str] | None = None) -> RuleSet:
    """Validate parsed rule-file data and build the RuleSet."""
    ops = ops if ops is not None else known_ops()
    if not isinstance(data, dict):
        raise RuleFileError(f"{origin}: expected a mapping with 'rules', got {type(data).__name__}")
    _check_fields(data, FILE_FIELDS, origin)
    rules_data = data.get("rules")
    if not isinstance(rules_data, list) or not rules_data:
        raise RuleFileError(f"{origin}: 'rules' must be a non-empty list")
    name = data.get("name", Path(origin).stem)
    if not isinstance(name, str):
        raise RuleFileError(f"{origin}: 'name' must be a string")
    rule_set = RuleSet(name=name)
    seen = set()
    for index, rule_data in enumerate(rules_data):
        rule = _compile_rule(rule_data, f"{origin}: rule {index + 1}", ops, origin)
        if rule.name in seen:
            raise RuleFileError(f"{origin}: rule {rule.name!r}: name used twice")
        seen.add(rule.name)
        rule_set.rules.append(rule)
    return rule_set


def _check_fields(data: dict, allowed: set[str], where: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise RuleFileError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _compile_rule(data: Any, where: str, ops: set[str], origin: str) -> Rule:
    if not isinstance(data, dict):
        raise RuleFileError(f"{where}: expected a mapping with 'name' and 'chain'")
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise RuleFileError(f"{where}: 'name' must be an identifier such as ConvBnRelu, got {name!r}")
    where = f"{origin}: rule {name!r}"
    _check_fields(data, RULE_FIELDS, where)
    chain = data.get("chain")
    if not isinstance(chain, list) or not chain:
        raise RuleFileError(f"{where}: 'chain' must be a non-empty list of ops")
    elements = tuple(_compile_element(item, f"{where}: chain[{i}]", ops) for i, item in enumerate(chain))
    if all(element.optional for element in elements):
        raise RuleFileError(f"{where}: every element is optional; at least one must be required")
    return Rule(name=name, chain=elements, source=origin)


def _compile_element(item: Any, where: str, ops: set[str]) -> Element:
    optional, attrs = False, {}
    if isinstance(item, dict):
        _check_fields(item, ELEMENT_FIELDS, where)
        text = item.get("op")
        optional = item.get("optional", False)
        if not isinstance(optional, bool):
            raise RuleFileError(f"{where}: 'optional' must be true or false")
        attrs = item.get("attrs", {})
        if not isinstance(attrs, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) or v == "channels" for v in attrs.values()
        ):
            raise RuleFileError(f"{where}: 'attrs' must map attribute names to integers or 'channels'")
    else:
        text = item
    if not isinstance(text, str) or not text.strip():
        raise RuleFileError(f"{where}: expected an op name such as Conv or 'Relu|Clip', got {text!r}")
    text = text.strip()
    if text.endswith("?"):
        optional, text = True, text[:-1]
    names = tuple(part.strip() for part in text.split("|"))
    for op in names:
        if op not in ops:
            raise RuleFileError(f"{where}: unknown op {op!r} (op types are ONNX names, e.g. Conv, Relu)")
    return Element(ops=names, optional=optional, attrs=tuple(sorted(attrs.items())))


def load_rule_sets(paths: list[str | Path] | None) -> list[RuleSet]:
    """The rule sets of the given files or registered rule-set names; the default set when none are given."""
    return [load_rule_file(resolve_rule_file(p)) for p in (paths or [DEFAULT_RULES])]


def registered_rule_files() -> list[tuple[RuleSet, str, str]]:
    """(rule set, path, plugin) for every rule file that plugins register."""
    from hnn.plugins.manager import rule_files

    return [(load_rule_file(path), path, plugin) for path, plugin in rule_files()]


def resolve_rule_file(name_or_path: str | Path) -> Path:
    """A path as given when it exists, else the file of the registered rule set of that name."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml", ".toml"):
        return path
    for rule_set, registered, _ in registered_rule_files():
        if rule_set.name == str(name_or_path):
            return Path(registered)
    raise RuleFileError(f"{name_or_path}: neither a rule file nor the name of a registered rule set")


def combine(rule_sets: list[RuleSet]) -> RuleSet:
    """One RuleSet with every rule, files in the order given (their order is the priority)."""
    combined = RuleSet(name="+".join(rs.name for rs in rule_sets))
    for rule_set in rule_sets:
        combined.rules.extend(rule_set.rules)
    return combined
