"""The runtime under every backend: shared state, optimizers, processes, pipes, signals, preflight checks."""
