"""Accepting mail: SMTP listeners and the handler that judges and enqueues."""
