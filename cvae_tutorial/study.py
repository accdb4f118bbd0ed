"""The prior-ladder study: train each rung for every seed at two budgets, evaluate every
checkpoint with chapter 6's protocol, and write the results with their provenance.

A budget of 2B epochs resumes the run of B epochs (the learning rate is constant), so the two
budgets cost 2B epochs per run and the check "does doubling the training change a verdict?"
compares a run with its own continuation. Results go to ``results_dir/epochs<B>.csv`` and
``results_dir/provenance.json`` (command, commit, digest of the code that trained, machine,
date, wall time), which chapter 6 reads (``ladder``), flagging them when the code has changed
since.

    python -m cvae_tutorial.study --out-dir runs/study --results-dir book/results/ladder

Training is resumable (rerun the command). ``--jobs N`` trains N runs (model, seed) at once,
each in its own process with its share of the torch threads; the runs can also be split over
machines with ``--models``/``--seeds`` and ``--train-only``, a last run without
``--train-only`` evaluating.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import multiprocessing
import multiprocessing.connection
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import CheckpointError, checkpoint_path, load_history, seed_dir
from .config import ConfigError, resolve_device
from .cvae import CVAE, run_config
from .data import DataError, load_dataset
from .evaluation import ClassifierConfig, evaluate_run
from .evaluation.results import RESULTS_CSV
from .files import atomic_write, temporary_beside
from .signals import sigterm_as_interrupt
from .training import NonFiniteLossError, TrainConfig, train

PACKAGE = Path(__file__).resolve().parent
# the rungs the study trains, every model that ladder.CONTRASTS compares: σ = 1, the prior at
# q(z|x) (N(0, I), conditional Gaussian, Real NVP), then at q(z|x,y) (the same and the
# conditional Real NVP)
RUNGS = ("gaussian", "sigma", "sigma_cond_qx", "sigma_flow_qx", "sigma_qxy", "sigma_cond",
         "sigma_flow", "sigma_cflow")
PROVENANCE = "provenance.json"
TRAINED_BY = "trained_by.json"
# the modules whose code decides the numbers: all but the benchmarks, plotting, the chapters'
# demonstrations (demos: toys and tables that show an idea, no number of the study), their
# exercise checks, their claims (which only check numbers already computed), this file (which
# only schedules and records) and the reading of its results (ladder.py)
NOT_DIGESTED = ("benchmarks", "plotting.py", "demos", "exercises.py", "claims.py", "study.py",
                "ladder.py")


def code_digest(package: Path = PACKAGE) -> str:
    """sha256 of the package's modules that train and evaluate (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package).as_posix()
        if relative.split("/")[0] in NOT_DIGESTED:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _commit() -> str:
    """The git commit of the package, '+ changes' when its files differ; 'unknown' outside git."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + uncommitted changes" if dirty else "")


def machine(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    return f"{name}; {platform.platform()}; Python {platform.python_version()}; " \
           f"torch {torch.__version__}"


def budget_dir(out_dir, epochs: int) -> Path:
    return Path(out_dir) / f"epochs{epochs}"


def train_ladder(models, seeds, budgets, train_data, test_data, out_dir, *, image_size: int,
                 latent_dim: int, batch_size: int, lr: float, device: str = "auto",
                 progress: bool = True, digest: str | None = None, on_batch=None) -> None:
    """Train every model and seed to each budget; a budget continues the previous one's run
    (its checkpoint is copied, then resumed). Finished runs are skipped. Each run records
    ``digest``, by default the code's as this call starts: what the process runs was imported
    by then, and a file edited on disk while it trains changes nothing it runs. ``on_batch``
    goes to :func:`~cvae_tutorial.training.train`."""
    digest = code_digest() if digest is None else digest
    for seed in seeds:
        for name in models:
            previous = None
            for epochs in budgets:
                path = checkpoint_path(seed_dir(budget_dir(out_dir, epochs), seed), name)
                if previous is not None and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    for source, target in ((previous.with_name(TRAINED_BY),
                                            path.with_name(TRAINED_BY)), (previous, path)):
                        partial = temporary_beside(target)  # never a half-copied file
                        shutil.copyfile(source, partial)
                        os.replace(partial, target)
                model = CVAE(run_config(name, image_size=image_size, latent_dim=latent_dim,
                                        num_attributes=train_data.num_attributes))
                config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                     device=device)
                history = train(model, train_data, test_data, config, path, progress=progress,
                                on_batch=on_batch)
                _record_training(path, len(history), digest)
                previous = path


def train_in_processes(jobs: int, models, seeds, budgets, load_data, out_dir,
                       **settings) -> None:
    """:func:`train_ladder` with its runs (one per model and seed, through every budget) in
    up to ``jobs`` processes at once, one process a run, the torch threads shared out among
    them. ``load_data`` gives (training, test) images, called in each process (a dataset
    on disk is mapped there rather than copied through a pipe: CelebA's is gigabytes);
    ``settings`` are train_ladder's keyword arguments. One bar counts the epochs of all
    runs. The first error, or a stop (Ctrl-C, SIGTERM), stops every process, each run through
    its cleanup (its checkpoint stays whole, so it resumes), and is raised here."""
    waiting = [(name, seed) for seed in seeds for name in models]
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # a forked child would inherit torch's threads
    running = {}  # process -> (its run, the end of its pipe this process reads)
    todo = sum(budgets[-1] - epochs_trained(out_dir, name, seed, budgets)
               for name, seed in waiting)
    try:
        with tqdm(total=todo, unit="epoch", desc=f"{len(waiting)} runs, {jobs} processes of "
                  f"{threads} thread{'s' * (threads > 1)}") as bar:
            while waiting or running:
                while waiting and len(running) < jobs:
                    name, seed = waiting.pop(0)
                    # a pipe each: a process stopped mid-write can block no other one, as it
                    # could on a queue they share (its lock held by the stopped writer)
                    reader, writer = context.Pipe(duplex=False)
                    process = context.Process(target=_train_run, args=(
                        name, seed, budgets, load_data, out_dir, settings, threads, writer))
                    process.start()
                    writer.close()  # the child's copy is the only one: its end is our EOF
                    running[process] = (f"{name}, seed {seed}", reader)
                readers = {reader: process for process, (_, reader) in running.items()}
                for reader in multiprocessing.connection.wait(list(readers), timeout=1.0):
                    process = readers[reader]
                    try:
                        message = reader.recv()  # 1 for each epoch done, or an error's line
                    except EOFError:  # the process ended, having said all it had to
                        process.join()
                        run, _ = running.pop(process)
                        reader.close()
                        if process.exitcode:  # killed, or a bug (its traceback above)
                            raise ChildProcessError(
                                f"the process training {run} ended with exit code "
                                f"{process.exitcode}; its last checkpoint is whole: rerun the "
                                f"study to resume it") from None
                        continue
                    if isinstance(message, str):
                        raise ChildProcessError(message)
                    bar.update(message)
    finally:
        for process in running:
            process.terminate()  # SIGTERM: the run ends through its cleanup
        for process, (_, reader) in running.items():
            process.join()
            reader.close()


def _train_run(name, seed, budgets, load_data, out_dir, settings, threads, report) -> None:
    """One process's run: ``threads`` torch threads, Ctrl-C left to the parent (which stops
    every process with SIGTERM); each epoch it finishes sends a 1 through ``report``, an
    error its line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    last = []  # the epoch of the last step

    def count(epoch, step, indices):
        if last and last[0] != epoch:
            report.send(1)
        last[:] = [epoch]
    try:
        train_ladder([name], [seed], budgets, *load_data(), out_dir, progress=False,
                     on_batch=count, **settings)
    except KeyboardInterrupt as stop:  # SIGTERM (signals.sigterm_as_interrupt)
        report.send(f"the run of {name}, seed {seed} was stopped ({stop}); its checkpoint is "
                    f"whole: rerun the study to resume it")
        sys.exit(1)
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError, OSError) as error:
        report.send(str(error))
        sys.exit(1)
    if last:
        report.send(1)


def epochs_trained(out_dir, name: str, seed: int, budgets) -> int:
    """How many epochs the run of ``name`` and ``seed`` holds, at its longest budget begun."""
    for epochs in reversed(budgets):
        path = checkpoint_path(seed_dir(budget_dir(out_dir, epochs), seed), name)
        if path.exists():
            return len(load_history(path))
    return 0


def _record_training(path: Path, epochs: int, digest: str) -> None:
    """Beside each checkpoint, the digests of the code that trained its epochs and the torch
    threads it used (a run continued by other code or threads records both; on a CPU the
    thread count changes the float sums, so a rerun is bit-identical only with the same)."""
    record_path = path.with_name(TRAINED_BY)
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    if record.get("epochs", 0) < epochs:
        record = {"epochs": epochs,
                  "code_digests": sorted(set(record.get("code_digests", [])) | {digest}),
                  "torch_threads": sorted(set(record.get("torch_threads", []))
                                          | {torch.get_num_threads()})}
        atomic_write(record_path, lambda f: f.write(json.dumps(record) + "\n"), "w")


def training_record(out_dir, models, seeds, epochs: int) -> dict:
    """The digests of the code that trained the runs of the longest budget (one, if nothing
    changed while the study ran) and the torch thread counts they trained with."""
    digests, threads = set(), set()
    for seed in seeds:
        for name in models:
            path = checkpoint_path(seed_dir(budget_dir(out_dir, epochs), seed), name)
            record = json.loads(path.with_name(TRAINED_BY).read_text())
            digests |= set(record["code_digests"])
            threads |= set(record.get("torch_threads", []))
    return {"training_code_digests": sorted(digests), "training_torch_threads": sorted(threads)}


def write_provenance(results_dir, record: dict) -> Path:
    path = Path(results_dir) / PROVENANCE
    return atomic_write(path, lambda f: f.write(json.dumps(record, indent=1) + "\n"), "w")


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m cvae_tutorial.study",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", required=True, help="checkpoints: epochs<B>/seed<k>/...")
    parser.add_argument("--results-dir", required=True, help="epochs<B>.csv, provenance.json")
    parser.add_argument("--models", nargs="+", default=list(RUNGS), type=run_config_name)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", nargs="+", type=int, default=[12, 24],
                        help="the budgets, e.g. B 2B")
    parser.add_argument("--dataset", default="embedded")
    parser.add_argument("--data-dir")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-images", type=int, default=4096, help="0: the whole split")
    parser.add_argument("--test-images", type=int, default=1024, help="0: the whole split")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--likelihood-images", type=int, default=128)
    parser.add_argument("--classifier-epochs", type=int, default=4)
    parser.add_argument("--feature-space", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs (model, seed) trained at once, one process each, the torch "
                             "threads shared out among them")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the provenance: how the study was run, what happened")
    parser.add_argument("--train-only", action="store_true",
                        help="train, evaluate nothing (to split training over machines)")
    args = parser.parse_args(argv)
    if min(args.epochs + [args.jobs]) < 1:
        parser.error(f"--epochs and --jobs must be at least 1; got --epochs "
                     f"{' '.join(map(str, args.epochs))} --jobs {args.jobs}")
    if sorted(set(args.epochs)) != args.epochs:
        parser.error(f"--epochs must be increasing budgets, e.g. 12 24; got {args.epochs}")
    if len(set(args.seeds)) != len(args.seeds) or len(set(args.models)) != len(args.models):
        parser.error("each seed and model once: a repeat would count a run twice")
    return args


def run_config_name(name: str) -> str:
    try:
        run_config(name)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def _without_notes(argv: list) -> list:
    """The command's arguments without its ``--note`` lines (the provenance keeps them apart)."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--note":
            skip = True
        elif not argument.startswith("--note="):
            kept.append(argument)
    return kept


def train_and_evaluate(args, digest: str) -> None:
    """The study's work for the parsed command line: train every run (in ``args.jobs``
    processes), then, unless ``--train-only``, evaluate each budget and write its csv."""
    load_data = functools.partial(_load_data, args.dataset, args.image_size, args.data_dir,
                                  args.train_images, args.test_images)
    train_data, test_data = load_data()  # here too: bad data is found before any process starts
    settings = dict(image_size=args.image_size, latent_dim=args.latent_dim,
                    batch_size=args.batch_size, lr=args.lr, device=args.device, digest=digest)
    jobs = min(args.jobs, len(args.models) * len(args.seeds))
    if jobs > 1:
        train_in_processes(jobs, args.models, args.seeds, args.epochs, load_data, args.out_dir,
                           **settings)
    else:
        train_ladder(args.models, args.seeds, args.epochs, train_data, test_data, args.out_dir,
                     **settings)
    if args.train_only:
        return
    floor_data = load_dataset(args.dataset, "valid", args.image_size, args.data_dir,
                              num_images=args.num_samples or None)
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    for epochs in args.epochs:
        folder = budget_dir(args.out_dir, epochs)
        evaluate_run(folder, train_data, test_data, args.models, seeds=args.seeds,
                     device=args.device, dataset=args.dataset, floor_data=floor_data,
                     feature_space=args.feature_space, num_samples=args.num_samples,
                     iw_samples=args.iw_samples, likelihood_images=args.likelihood_images,
                     cache_dir=Path(args.out_dir) / "eval_cache",
                     classifier_config=ClassifierConfig(
                         image_size=args.image_size, epochs=args.classifier_epochs,
                         num_attributes=train_data.num_attributes))
        csv_text = (folder / RESULTS_CSV).read_text()
        atomic_write(results_dir / f"epochs{epochs}.csv",
                     lambda f, text=csv_text: f.write(text), "w")


def _load_data(dataset: str, image_size: int, data_dir, train_images: int,
               test_images: int) -> tuple:
    """The study's (training, test) images; a count of 0 takes the whole split."""
    return tuple(load_dataset(dataset, split, image_size, data_dir, num_images=count or None)
                 for split, count in (("train", train_images), ("test", test_images)))


def main(argv=None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    started, digest = time.perf_counter(), code_digest()  # of the code this process runs
    try:
        with sigterm_as_interrupt():  # a study stopped by SIGTERM stops its processes
            train_and_evaluate(args, digest)
    except (ConfigError, DataError, CheckpointError, NonFiniteLossError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (signals.sigterm_as_interrupt)
        print(f"stopped ({str(stop) or 'Ctrl-C'}); every checkpoint in {args.out_dir} is whole: "
              f"rerun the same command to resume", file=sys.stderr)
        return 130
    if args.train_only:
        return 0
    training_seconds = sum(
        row["seconds"] for seed in args.seeds for name in args.models
        for row in load_history(checkpoint_path(
            seed_dir(budget_dir(args.out_dir, args.epochs[-1]), seed), name)))
    device = resolve_device(args.device)
    write_provenance(args.results_dir, {
        "command": "python -m cvae_tutorial.study " + shlex.join(_without_notes(
            sys.argv[1:] if argv is None else argv)),
        "commit": _commit(), "code_digest": digest,  # of the code that evaluated
        **training_record(args.out_dir, args.models, args.seeds, args.epochs[-1]),
        "machine": machine(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "training_seconds": round(training_seconds),
        "wall_seconds_of_this_command": round(time.perf_counter() - started),
        "models": args.models, "seeds": args.seeds, "budgets": args.epochs,
        "train_images": args.train_images, "image_size": args.image_size,
        "latent_dim": args.latent_dim, "batch_size": args.batch_size, "lr": args.lr,
        "num_samples": args.num_samples, "iw_samples": args.iw_samples,
        "notes": args.note})
    print(f"wrote {args.results_dir}/epochs<B>.csv and {PROVENANCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
