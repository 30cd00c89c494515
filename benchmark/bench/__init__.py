"""clbench.bench: `clbench bench`, speed figures each against a reference measured in the same run
(`suite`), the speed switches' figures (`switches`) and the clocks both use (`timing`)."""
