"""labwork.history"""
