"""clbench.scenarios"""
