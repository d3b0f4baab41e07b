"""pruning: not yet built (see pruning/README.md)."""
