"""Benchmarks of petition-widget: see bench/README.md."""
