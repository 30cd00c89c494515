"""`--plugin SPEC` (repeatable) of `clbench run` and `clbench tune`: an argparse action."""

from __future__ import annotations

import argparse
import json

from clbench.config.plugin_specs import PLUGINS_OVERRIDE


class PluginOption(argparse.Action):
    """`--plugin SPEC` (repeatable): the specs given on the command line become the config's
    `plugins:` list at the precedence of --set (replacing a --config file's list). They travel
    as one `plugins=[...]` entry of the `--set` overrides, so every command that reads
    `--set` takes them."""

    def __call__(self, parser, namespace, values, option_string=None):
        specs = [*(getattr(namespace, self.dest, None) or []), values]
        setattr(namespace, self.dest, specs)
        previous = getattr(namespace, "_plugins_override", None)
        overrides = [o for o in (getattr(namespace, "overrides", None) or []) if o != previous]
        entry = PLUGINS_OVERRIDE + json.dumps(specs)
        namespace.overrides = [*overrides, entry]
        namespace._plugins_override = entry
