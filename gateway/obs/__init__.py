"""Observability: structured logs (never a real address) and the mail log."""
