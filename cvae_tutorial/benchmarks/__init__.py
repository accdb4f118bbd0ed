"""Benchmarks that print side-by-side ratios (never timed tests: machines are shared and noisy).

    python -m cvae_tutorial.benchmarks train   # data loader and training-step throughput
    python -m cvae_tutorial.benchmarks fid     # FID feature pass and the cached real statistics
"""
