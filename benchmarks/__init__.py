"""Latency/throughput harness behind ``sdk benchmark``."""
