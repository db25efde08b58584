"""Benchmarks of the service against the targets of the performance issue: `make bench` writes bench/RESULTS.md."""
