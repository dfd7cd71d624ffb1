"""Benchmarking: timing, machine identity, the regression gate, sweeps and reports."""
