"""Transformations: parse, rewrite, leak guard, DSN. Pure: no I/O."""
