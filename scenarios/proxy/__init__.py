"""clbench.scenarios.proxy"""
