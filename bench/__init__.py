"""Benchmarks of bsm-gateway; `python -m bench.e2e` is the end-to-end one (`make bench`)."""
