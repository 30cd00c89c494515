from clbench.cli import console

console()
