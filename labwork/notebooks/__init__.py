"""labwork.notebooks"""
