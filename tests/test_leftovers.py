"""Nothing left behind: a builder or a training killed with SIGKILL leaves temporary files that
name their owner (host, pid), and the next build or run removes those of processes that are
gone, saying how much it freed; SIGTERM runs the cleanup itself, as Ctrl-C does, and the last
checkpoint stays whole."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import torch

from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train
from cvae_tutorial.checkpoints import load_checkpoint, save_checkpoint
from cvae_tutorial.data import build_image_cache
from cvae_tutorial.files import remove_leftovers, temporary_beside

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

BUILDER = textwrap.dedent('''
    import sys, time, torch
    from cvae_tutorial.data import build_image_cache

    class Slow(torch.utils.data.Dataset):
        def __len__(self):
            return 400

        def __getitem__(self, i):
            time.sleep(0.01)
            return torch.full((3, 16, 16), i % 250, dtype=torch.uint8), torch.tensor([i % 2])

    build_image_cache(Slow(), sys.argv[1], num_workers=0, batch_size=8, source={"slow": 1})
''')


class Quick(torch.utils.data.Dataset):
    def __len__(self):
        return 400

    def __getitem__(self, i):
        return torch.full((3, 16, 16), i % 250, dtype=torch.uint8), torch.tensor([i % 2])


def temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".partial", ".tmp"))


def wait_for(condition, process, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def start_builder(tmp_path):
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    target = tmp_path / "cache" / "slow.uint8"
    process = subprocess.Popen([sys.executable, str(script), str(target)], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the partial file exists once the lock is held and its record written (the record's own
    # temporary file comes earlier: a builder stopped then says nothing about who it is)
    wait_for(lambda: target.parent.exists() and any(name.endswith(".partial") for name in
                                                    temporaries(target.parent)), process)
    return process, target


def test_a_killed_builders_partial_file_names_it_and_the_next_build_removes_it(tmp_path):
    process, target = start_builder(tmp_path)
    (partial,) = temporaries(target.parent)
    assert f".{socket.gethostname()}.{process.pid}." in partial  # its owner, in its name
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert temporaries(target.parent) == [partial]  # kill -9 runs no cleanup
    size = (target.parent / partial).stat().st_size
    with pytest.warns(UserWarning, match=rf"removed 1 temporary file\(s\) in .* left by stopped "
                                         rf"processes \({partial}\): {size / 1e6:.1f} MB freed"):
        cached = build_image_cache(Quick(), target, num_workers=0, source={"slow": 1})
    assert len(cached.images) == 400 and temporaries(target.parent) == []


def test_sigterm_stops_a_build_through_its_cleanup(tmp_path):
    process, target = start_builder(tmp_path)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0 and "Terminated: terminated by SIGTERM" in err, err[-2000:]
    assert temporaries(target.parent) == []
    assert not target.with_suffix(".json").exists()  # no cache pretends to be whole


def test_only_the_temporaries_of_gone_processes_are_removed(tmp_path):
    mine = temporary_beside(tmp_path / "checkpoint.pt")  # this process: alive
    stopped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(stopped.pid, signal.SIGSTOP)  # alive though it does nothing
        alive = tmp_path / f".checkpoint.pt.{socket.gethostname()}.{stopped.pid}.abcd1234.tmp"
        other_host = tmp_path / ".checkpoint.pt.elsewhere.1.abcd1234.tmp"
        unrelated = tmp_path / "notes.tmp"
        for path in (alive, other_host, unrelated):
            path.write_bytes(b"x")
        dead = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import os, signal
            from cvae_tutorial.files import temporary_beside
            temporary_beside({str(tmp_path / 'checkpoint.pt')!r}).write_bytes(b"12345")
            os.kill(os.getpid(), signal.SIGKILL)""")], env=ENV, timeout=60)
        assert dead.returncode == -signal.SIGKILL
        assert len(temporaries(tmp_path)) == 5
        with pytest.warns(UserWarning, match=r"removed 1 temporary file"):
            assert remove_leftovers(tmp_path) == 5
        assert temporaries(tmp_path) == sorted(p.name for p in (mine, alive, other_host,
                                                                  unrelated))
    finally:
        stopped.kill()
        stopped.wait(timeout=30)


TRAINING = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from cvae_tutorial import CVAE, CVAEConfig, TrainConfig, embedded_faces, train
    model = CVAE(CVAEConfig(model="sigma", image_size=16, latent_dim=4, base_channels=8))
    config = TrainConfig(epochs=50, batch_size=16, device="cpu", checkpoint_every=1)
    train(model, embedded_faces("train", 16, num_images=64), embedded_faces("test", 16,
          num_images=16), config, sys.argv[1], progress=False)
""")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_killed_training_keeps_its_checkpoint_whole_and_leaves_nothing(tmp_path, how):
    path = tmp_path / "run" / "checkpoint.pt"
    script = tmp_path / "train.py"
    script.write_text(TRAINING)
    process = subprocess.Popen([sys.executable, str(script), str(path)], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: path.exists(), process, timeout=120)
    time.sleep(0.5)  # somewhere in the next steps and their saves
    process.send_signal(getattr(signal, how))
    _, err = process.communicate(timeout=60)
    if how == "SIGTERM":
        assert "Terminated: terminated by SIGTERM" in err, err[-2000:]
        assert temporaries(path.parent) == [] and not path.with_name("checkpoint.pt.lock.json"
                                                                      ).exists()
    else:  # a leftover it may or may not have had time to leave, made sure of
        subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import os, signal
            from cvae_tutorial.files import temporary_beside
            temporary_beside({str(path)!r}).write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)""")], env=ENV, timeout=60)
    state = load_checkpoint(path)  # whole
    assert state["epoch"] * 4 + state["step_in_epoch"] >= 1
    resumed = CVAE(CVAEConfig(model="sigma", image_size=16, latent_dim=4, base_channels=8))
    config = TrainConfig(epochs=state["epoch"] + 1, batch_size=16, device="cpu",
                         checkpoint_every=1)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        train(resumed, embedded_faces("train", 16, num_images=64),
              embedded_faces("test", 16, num_images=16), config, path, progress=False)
    assert temporaries(path.parent) == []
    freed = [str(w.message) for w in said if "temporary file" in str(w.message)]
    assert bool(freed) == (how == "SIGKILL"), freed


def test_a_kill_while_rotating_the_previous_checkpoint_leaves_a_removable_leftover(tmp_path):
    """The second name of the last good checkpoint is made before it replaces ``.prev``; a kill
    between the two leaves it, owner-named, so the next run removes it."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 0}, path)
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from cvae_tutorial import checkpoints
        checkpoints.os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
        checkpoints.save_checkpoint({{"epoch": 1}}, {str(path)!r})""")], env=ENV, timeout=60)
    assert killed.returncode == -signal.SIGKILL and len(temporaries(tmp_path)) == 1
    with pytest.warns(UserWarning, match=r"removed 1 temporary file"):
        remove_leftovers(tmp_path)
    assert temporaries(tmp_path) == [] and torch.load(path) == {"epoch": 0}


def test_rotating_onto_a_previous_that_already_is_the_checkpoint_leaves_nothing(tmp_path):
    """A save interrupted after the rotation leaves ``.prev`` a second name of the checkpoint; a
    rename between two names of one file does nothing, so the next save must still clean up."""
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 0}, path)
    os.link(path, tmp_path / "checkpoint.pt.prev")
    save_checkpoint({"epoch": 1}, path)
    assert temporaries(tmp_path) == []
    assert torch.load(tmp_path / "checkpoint.pt.prev") == {"epoch": 0}
    assert torch.load(path) == {"epoch": 1}
