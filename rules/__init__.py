"""Declarative merge rules (Conv-BN-ReLU style fusions) applied to the canonical IR.

:mod:`hnn.rules.loader` reads rule files; :mod:`hnn.rules.engine` matches and merges;
:mod:`hnn.rules.plugin` registers the shipped rule files (``default.yaml``: the paper's four
rules; ``agnostic.yaml``: the shipped checkpoints'). docs/rules.md documents the format.
"""

from hnn.rules.engine import Element, Rule, RuleSet
from hnn.rules.loader import (
    DEFAULT_RULES,
    RuleFileError,
    combine,
    load_rule_file,
    load_rule_sets,
)

__all__ = ["Element", "Rule", "RuleSet", "DEFAULT_RULES", "RuleFileError", "combine", "load_rule_file",
           "load_rule_sets"]
