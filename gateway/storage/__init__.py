"""Storage: the schema and its migrations, the one database handle, and one owner per table
family (the archive, the queue, the registry, ...)."""
