"""Storage: the schema, the one session factory, and the repositories behind core.ports."""
