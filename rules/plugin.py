"""Built-in plugin contributing the rule files shipped in rules/: the paper's (default.yaml) and others."""

from hnn.plugins.hookspecs import hookimpl


@hookimpl
def hnn_register_rule_files(register):
    from hnn.rules.loader import DEFAULT_RULES

    register(str(DEFAULT_RULES))
    for path in sorted(DEFAULT_RULES.parent.glob("*.yaml")):
        if path != DEFAULT_RULES:
            register(str(path))
