"""The archive: every message as received and as delivered, with its decision."""
