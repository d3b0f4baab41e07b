"""margin: not yet built (see margin/README.md)."""
