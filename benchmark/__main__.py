from clbench.cli.main import console

console()
