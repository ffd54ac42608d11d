"""Benchmarks: pacer against Stable-Baselines3 and its own naive design."""
