"""clbench.run: one benchmark run, top to bottom, and what is kept of it.

`runner` (config -> scenario -> model -> strategy -> train/eval -> store), `checkpoints` and
`resume` (continuing after a crash), `provenance`, `report` (plain-text views), `reproduce`,
`bundles` (export/import), `tune` (settings chosen on validation data), `settings` (a scenario's
per-strategy settings) and `proxy_pretrain` (the embedded proxy CLIP's own pretraining).
"""
