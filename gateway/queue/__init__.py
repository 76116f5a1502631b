"""The outbound queue: rows in the database, claimed and delivered by workers."""
