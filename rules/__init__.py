"""Declarative merge rules (Conv-BN-ReLU style fusions) applied to the canonical IR.

:mod:`hnn.rules.loader` reads rule files; :mod:`hnn.rules.engine` matches and merges;
``default.yaml`` holds the paper's four rules. docs/rules.md documents the format.
"""

from hnn.rules.engine import Element, Rule, RuleSet
from hnn.rules.loader import DEFAULT_RULES, RuleFileError, combine, load_rule_file, load_rule_sets


def merge(graph, rule_files=None):
    """Apply the rule files (default: the paper's rules) to an IR graph: (merged graph, matches per rule)."""
    return combine(load_rule_sets(rule_files)).apply(graph)


__all__ = ["Element", "Rule", "RuleSet", "DEFAULT_RULES", "RuleFileError", "combine", "load_rule_file",
           "load_rule_sets", "merge"]
