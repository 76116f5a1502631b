"""Benchmarks of bsm-gateway; `python -m bench.e2e` is the end-to-end one (`make bench`),
`python -m bench.postfix` puts the gateway next to Postfix (`make bench-postfix`),
`python -m bench.scaling` measures it over 1 to 100 concurrent sessions and with many idle
ones (`make bench-scaling`)."""
