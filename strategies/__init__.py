"""clbench.strategies"""
