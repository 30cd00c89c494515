"""clbench.data_manifests"""
