"""Virtuna: predict, before posting, whether a TikTok post will resonate."""

__version__ = "0.1.0"
