"""Benchmarks: the app against a measured floor, side by side in one run (`make bench`)."""
