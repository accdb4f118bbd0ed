"""``python -m cvae_tutorial.benchmarks train|profile|rehearsal|fid|evaluation [options]``."""
import importlib
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    benchmarks = {"train": "training", "profile": "profile", "rehearsal": "rehearsal",
                  "fid": "fid", "evaluation": "evaluation"}
    if not argv or argv[0] not in benchmarks:
        raise SystemExit(f"usage: python -m cvae_tutorial.benchmarks {{{','.join(benchmarks)}}} "
                         f"[options]")
    importlib.import_module(f"cvae_tutorial.benchmarks.{benchmarks[argv[0]]}").main(argv[1:])


if __name__ == "__main__":
    main()
