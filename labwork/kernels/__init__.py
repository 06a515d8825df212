"""labwork.kernels"""
