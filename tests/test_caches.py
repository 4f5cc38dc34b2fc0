"""``dialogsum-batch cache`` over downloads: finished ones listed and cleared, a fetch in progress left alone."""

from __future__ import annotations

import os
import time

from click.testing import CliRunner

from dialogsum_batch.caches import clear_caches, describe_caches, download_files
from dialogsum_batch.cli import main
from dialogsum_batch.config import downloads_dir
from dialogsum_batch.files import exclusive_lock


def download(name: str, body: bytes, days_old: float = 0.0):
    folder = downloads_dir() / name
    folder.mkdir(parents=True)
    path = folder / "corpus.7z"
    path.write_bytes(body)
    stamp = time.time() - days_old * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_in_progress_parts_and_locks_are_not_downloads(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALOGSUM_CACHE", str(tmp_path / "cache"))
    done = download("aaa", b"x" * 1024)
    (done.parent / "corpus.7z.lock").touch()
    fetching = downloads_dir() / "bbb"
    fetching.mkdir()
    (fetching / ".corpus.7z.123-ab.part").write_bytes(b"y" * 10)
    assert download_files() == [done]
    assert "1 downloads" in describe_caches()


def test_clear_removes_old_downloads_and_leaves_one_being_fetched(monkeypatch, tmp_path):
    monkeypatch.setenv("DIALOGSUM_CACHE", str(tmp_path / "cache"))
    old = download("old", b"o" * 2048, days_old=40)
    new = download("new", b"n" * 2048)
    busy = download("busy", b"b" * 2048, days_old=40)
    with exclusive_lock(busy.with_name(busy.name + ".lock"), wait=True):  # a fetch holds it
        said = clear_caches(older_than_days=30)
    assert "1 downloads" in said
    assert not old.exists() and new.exists() and busy.exists()
    result = CliRunner().invoke(main, ["cache", "--clear"])
    assert result.exit_code == 0 and "2 downloads" in result.stdout
    assert download_files() == []
