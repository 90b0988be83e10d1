"""Benchmarks of the gateway against the provider SDKs called directly (see bench/README.md)."""
