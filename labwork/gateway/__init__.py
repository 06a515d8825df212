"""labwork.gateway"""
