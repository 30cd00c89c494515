"""clbench.training: one session's training and the evaluation after it, on Avalanche.

The loop (`loop`), the evaluation with its caches (`evaluation`, `eval_cache`, `image_cache`,
`text_cache`), what a session boundary keeps and puts back (`session_state`: model
weights, random generators; the run's checkpoints and the strategy kit share it), the console
and store loggers, the speed switches, the Avalanche plugins added to
a strategy (`extra_plugins`) and the strategy test kit (`strategy_kit`) that runs the loop.
"""
