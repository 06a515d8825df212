"""labwork.dashboard"""
