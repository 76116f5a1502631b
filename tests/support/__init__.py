"""Helpers shared by the test suites: real gateways, real sinks, real databases."""
