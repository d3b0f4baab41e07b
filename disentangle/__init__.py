"""disentangle: not yet built (see disentangle/README.md)."""
