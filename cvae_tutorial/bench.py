"""Benchmarks that print side-by-side ratios (never timed tests: machines are shared and noisy).

    python -m cvae_tutorial.bench train   # data loader and training-step throughput
    python -m cvae_tutorial.bench fid     # FID feature pass and the cached real statistics
"""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    benchmarks = {"train": "cvae_tutorial.benchmark_training", "fid": "cvae_tutorial.benchmark_fid"}
    if not argv or argv[0] not in benchmarks:
        raise SystemExit(f"usage: python -m cvae_tutorial.bench {{{','.join(benchmarks)}}} [options]")
    import importlib
    importlib.import_module(benchmarks[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
