"""files.py: temporary files named after their owner and made as the umask allows, atomic writes,
the leftovers of gone processes, fingerprints, and locks that say who holds them."""
import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

from cvae_tutorial.files import (LockWaitTimeout, atomic_write, fingerprint, holding, lock_holder,
                                 process_state, remove_leftovers, temporary_beside, umask_mode)

HOST = socket.gethostname()


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def _gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_umask_mode_is_the_mode_less_the_umask_and_leaves_the_umask(umask_027):
    assert umask_mode() == 0o640
    assert umask_mode(0o777) == 0o750
    assert os.umask(0o027) == 0o027  # unchanged by asking


def test_a_temporary_file_is_empty_beside_its_target_named_after_its_owner(tmp_path, umask_027):
    target = tmp_path / "checkpoint.pt"
    first, second = temporary_beside(target), temporary_beside(target, ".partial")
    assert first != second and first.parent == second.parent == tmp_path
    assert first.name.startswith(f".checkpoint.pt.{HOST}.{os.getpid()}.")
    assert first.suffix == ".tmp" and second.suffix == ".partial"
    assert first.read_bytes() == b"" and not target.exists()
    assert first.stat().st_mode & 0o777 == 0o640  # readable as the umask allows, not mkstemp's 0600


def test_atomic_write_replaces_the_file_or_keeps_the_old_one_whole(tmp_path):
    path = tmp_path / "note.txt"
    assert atomic_write(path, lambda file: file.write("first"), "w") == path
    atomic_write(path, lambda file: file.write(b"second"))
    assert path.read_bytes() == b"second"

    def fails(file):
        file.write(b"half")
        raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space left"):
        atomic_write(path, fails)
    assert path.read_bytes() == b"second" and sorted(tmp_path.iterdir()) == [path]


def test_process_states():
    assert process_state(os.getpid()) == "running"
    assert process_state(_gone_pid()) == "gone"


def test_only_the_temporaries_of_gone_processes_of_this_host_are_removed(tmp_path):
    gone = _gone_pid()
    names = {"gone": f".data.bin.{HOST}.{gone}.abc123.tmp",
             "gone_partial": f".cache.uint8.{HOST}.{gone}.x_9.partial",
             "mine": f".data.bin.{HOST}.{os.getpid()}.abc123.tmp",
             "other_host": f".data.bin.elsewhere-{HOST}.{gone}.abc123.tmp",
             "other_suffix": f".data.bin.{HOST}.{gone}.abc123.txt",
             "plain": "data.bin"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"12345")
    with pytest.warns(UserWarning, match=r"removed 2 temporary file\(s\) in .*0\.0 MB freed"):
        assert remove_leftovers(tmp_path) == 10
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        names[key] for key in ("mine", "other_host", "other_suffix", "plain"))
    assert remove_leftovers(tmp_path / "missing") == 0


def test_fingerprint_is_the_sha1_of_the_chunks_in_order_cut_to_length():
    assert fingerprint([b"ab", b"c"]) == hashlib.sha1(b"abc").hexdigest()
    assert fingerprint([b"ab", b"c"], 12) == hashlib.sha1(b"abc").hexdigest()[:12]
    assert fingerprint(iter([b"c", b"ab"])) != fingerprint([b"ab", b"c"])
    assert fingerprint([]) == hashlib.sha1(b"").hexdigest()


def _note(lock_path, pid, host=HOST):
    (lock_path.parent / f"{lock_path.name}.json").write_text(
        json.dumps({"pid": pid, "host": host, "since": "2026-01-01 00:00:00 UTC"}))


def test_lock_holder_says_who_holds_a_lock_and_what_to_do(tmp_path):
    lock = tmp_path / "cache.lock"
    holder, state, advice = lock_holder(lock)
    assert (holder, state) == ("an unknown process", "unknown") and str(lock) in advice
    _note(lock, os.getpid())
    holder, state, advice = lock_holder(lock)
    assert holder == (f"pid {os.getpid()} on host {HOST} since 2026-01-01 00:00:00 UTC, "
                      f"still running")
    assert state == "running"
    assert advice == f"wait for it, or end it (kill {os.getpid()}) if it hangs"
    gone = _gone_pid()
    _note(lock, gone)
    assert lock_holder(lock)[1:] == ("gone", f"end pid {gone} on {HOST} if it still runs, or "
                                             f"delete {lock}")
    _note(lock, os.getpid(), "elsewhere")
    assert lock_holder(lock)[0].endswith("on another host, not checked")
    assert lock_holder(lock)[1] == "unknown"


def test_holding_a_lock_names_the_holder_and_a_second_holder_is_refused(tmp_path):
    lock = tmp_path / "run.lock"
    with holding(lock, "the test lock"):
        note = json.loads((tmp_path / "run.lock.json").read_text())
        assert (note["pid"], note["host"]) == (os.getpid(), HOST)
        with pytest.raises(LockWaitTimeout, match=rf"^the test lock \({lock}\) is held by pid "
                                                  rf"{os.getpid()} on host .*still running; wait "
                                                  rf"for it, or end it .* then rerun$"):
            with holding(lock, "the test lock", timeout=0):
                pass
    assert not (tmp_path / "run.lock.json").exists()
    _note(lock, _gone_pid())  # a note left by a killed holder: the free lock is taken over
    with pytest.warns(RuntimeWarning, match="taking over the test lock .* no longer running"):
        with holding(lock, "the test lock"):
            assert json.loads((tmp_path / "run.lock.json").read_text())["pid"] == os.getpid()
