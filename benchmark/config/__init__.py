"""clbench.config: what a run is, typed, validated and hashed, before anything heavy is imported.

`run_config` holds `RunConfig` and its parts; `plugin_specs` the `--plugin SPEC` entries as
plain data. Nothing here imports torch.
"""
