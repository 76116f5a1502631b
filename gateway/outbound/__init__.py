"""Transports: where delivered mail goes."""
