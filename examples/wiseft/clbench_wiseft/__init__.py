"""clbench-wiseft: WiSE-FT (Wortsman et al. 2022) as a clbench strategy plugin.

clbench finds it through the `clbench.strategies` entry point declared in pyproject.toml
(`wiseft = "clbench_wiseft.plugin:WiSEFTPlugin"`); nothing here is imported until a run asks for
the strategy.
"""
