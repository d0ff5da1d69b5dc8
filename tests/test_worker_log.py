"""The embedded worker's log lives in a folder only its user can enter, and is never opened through a link."""

from __future__ import annotations

import os
import stat
import tempfile

import pytest

from tutor.backends import BackendError
from tutor.backends.worker import ModelWorker, open_log, private_dir


@pytest.fixture
def tmpdir_of_the_machine(tmp_path, monkeypatch):
    """A stand-in for the shared /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_the_log_is_in_a_private_folder(tmpdir_of_the_machine):
    worker = ModelWorker("nowhere", None)
    folder = worker.log_path.parent
    assert folder.parent == tmpdir_of_the_machine
    assert worker.log_path.name == f"worker-{os.getpid()}.log"  # not guessable from outside the folder anyway
    private_dir(folder)
    info = os.lstat(folder)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    fd = open_log(worker.log_path)
    os.close(fd)
    assert stat.S_IMODE(os.stat(worker.log_path).st_mode) == 0o600


def test_a_planted_link_at_the_log_is_not_followed(tmpdir_of_the_machine):
    victim = tmpdir_of_the_machine / "victim"
    victim.write_text("precious\n")
    worker = ModelWorker("nowhere", None)
    private_dir(worker.log_path.parent)
    os.symlink(victim, worker.log_path)
    with pytest.raises(BackendError, match="if it is a link, remove it"):
        worker.ensure()  # refused before the worker process is started
    assert victim.read_text() == "precious\n"


def test_the_old_fixed_name_in_tmp_is_not_used(tmpdir_of_the_machine):
    victim = tmpdir_of_the_machine / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, tmpdir_of_the_machine / f"tutor-worker-{os.getpid()}.log")
    worker = ModelWorker("nowhere", None)
    assert worker.log_path != tmpdir_of_the_machine / f"tutor-worker-{os.getpid()}.log"
    assert worker.log_path.parent != tmpdir_of_the_machine


@pytest.mark.parametrize("plant", ["link", "open", "file"])
def test_a_planted_folder_is_refused(tmpdir_of_the_machine, plant):
    folder = tmpdir_of_the_machine / f"tutor-{os.getuid()}"
    elsewhere = tmpdir_of_the_machine / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    if plant == "link":
        os.symlink(elsewhere, folder)
    elif plant == "open":
        folder.mkdir()
        folder.chmod(0o777)
    else:
        folder.write_text("")
    worker = ModelWorker("nowhere", None)
    with pytest.raises(BackendError, match="remove it") as exc:
        worker.ensure()
    assert str(folder) in str(exc.value)
    assert list(elsewhere.iterdir()) == []
