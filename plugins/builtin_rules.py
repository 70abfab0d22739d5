"""Built-in plugin contributing the paper's merge rules (rules/default.yaml)."""

from hnn.plugins.hookspecs import hookimpl


@hookimpl
def hnn_register_rule_files(register):
    from hnn.rules.loader import DEFAULT_RULES

    register(str(DEFAULT_RULES))
