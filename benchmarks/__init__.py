"""Benchmark workloads behind ``bin/bench``; each figure is measured beside its baseline."""
