"""clbench.cli: the `clbench` command line, one module per command family; `main` builds the
parser and dispatches. Quick commands (`--help`, `list`, `runs`, ...) never import torch."""
