"""manifolds: not yet built (see manifolds/README.md)."""
