"""clbench.strategies: the strategy plugins.

Each built-in strategy is a subpackage, `<name>/__init__.py` (torch-free: its config and its
declaration, `clbench.strategies.declaration`) beside `<name>/plugin.py` (its torch code);
`registry` finds them by walking this package. The shared machinery is at this level: `base`
(the plugin base), `config_base`, `blocks`, `masking`, `lora_layers`.
"""
