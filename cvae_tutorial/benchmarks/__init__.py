"""Benchmarks that print side-by-side ratios (never timed tests: machines are shared and noisy).

    python -m cvae_tutorial.benchmarks train      # data loader and training-step throughput
    python -m cvae_tutorial.benchmarks profile    # operators and host-device syncs per step
    python -m cvae_tutorial.benchmarks rehearsal  # chapter 5 on a generated CelebA-sized folder
    python -m cvae_tutorial.benchmarks fid        # FID feature pass and the saved reference
    python -m cvae_tutorial.benchmarks evaluation # images each network reads per results row
"""
