"""clbench.sweep: grids of runs from one YAML file (`plan`), executed locally or on SLURM
(`executors`), and where a sweep stands (`status`)."""
