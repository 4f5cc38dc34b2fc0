"""Hub ids resolve as transformers resolves them, through the real huggingface_hub code path.

A stand-in Hub on 127.0.0.1 (HF_ENDPOINT) serves the few endpoints that path calls: repo info, tree,
commits, discussions and file resolve. Repos: safetensors on main; pickle-only main with SFconvertbot's
conversion in refs/pr/1; pickle-only main whose conversion PR someone else opened, or whose main moved on
after the conversion (transformers skips both).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from click.testing import CliRunner
from conftest import read_jsonl

from dialogsum_batch.backends.resolve import CONVERSION_BOT, CONVERSION_TITLE, PickleOnlyError, resolve_model
from dialogsum_batch.cli import main
from dialogsum_batch.errors import ModelError
from dialogsum_batch.hub import OFFLINE_VARIABLES

DATE = "2024-01-01T00:00:00.000Z"
CHATS = "".join(
    json.dumps({"id": f"c{i}", "dialogue": f"Amy: are we still on for {day}?\nBob: yes, see you"}) + "\n"
    for i, day in enumerate(["Monday", "Friday", "lunch"])
)


# ----------------------------------------------------------------------------- the stand-in Hub


@dataclass
class Revision:
    files: dict[str, bytes]
    parent: Revision | None = None  # a pull request's base: main's head when it was opened

    @cached_property
    def sha(self) -> str:  # 40 hex digits, as huggingface_hub expects of a commit id
        digest = hashlib.sha1((self.parent.sha if self.parent else "").encode())
        for name, data in sorted(self.files.items()):
            digest.update(name.encode() + hashlib.sha1(data).digest())
        return digest.hexdigest()

    def history(self) -> list[Revision]:
        return [self] + (self.parent.history() if self.parent else [])


@dataclass
class Repo:
    revisions: dict[str, Revision]  # "main", "refs/pr/N"
    discussions: list[dict] = field(default_factory=list)

    def find(self, revision: str) -> Revision | None:
        by_sha = {rev.sha: rev for rev in self.revisions.values()}
        return self.revisions.get(revision) or by_sha.get(revision)


class StandInHub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repos: dict[str, Repo]):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.repos = repos
        self.requests: list[str] = []  # "GET /path", decoded, in arrival order
        self.url = f"http://127.0.0.1:{self.server_port}"
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()  # the port refuses connections from now on


class HubHandler(BaseHTTPRequestHandler):
    server: StandInHub
    REPO = r"(?P<repo>[^/]+/[^/]+)"  # revisions arrive URL-quoted (refs%2Fpr%2F1), so [^/]+ holds them
    ROUTES = (  # path pattern -> method; the endpoints huggingface_hub calls to resolve and download
        (rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?", "info"),
        (rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)", "tree"),
        (rf"/api/models/{REPO}/commits/(?P<rev>[^/]+)", "commits"),
        (rf"/api/models/{REPO}/discussions", "discussions"),
        (rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    )

    def do_GET(self) -> None:
        self.route()

    def do_HEAD(self) -> None:
        self.route()

    def log_message(self, *args) -> None:  # keep pytest's captured stderr for the code under test
        pass

    def route(self) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append(f"{self.command} {unquote(path)}")
        for pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, path)
            if match:
                args = {key: unquote(value) for key, value in match.groupdict().items() if value}
                return getattr(self, name)(**args)
        self.reply(404, {"error": "no such endpoint"})

    def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def lookup(self, repo: str, rev: str) -> Revision | None:
        """The revision, or None after replying 404 with the error code huggingface_hub maps to its exceptions."""
        found = self.server.repos.get(repo)
        revision = found.find(rev) if found else None
        if found is None:
            self.reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        elif revision is None:
            self.reply(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        return revision

    def info(self, repo: str, rev: str = "main") -> None:
        if revision := self.lookup(repo, rev):
            self.reply(
                200,
                {
                    "id": repo,
                    "sha": revision.sha,
                    "private": False,
                    "siblings": [{"rfilename": name} for name in revision.files],
                },
            )

    def tree(self, repo: str, rev: str) -> None:
        if revision := self.lookup(repo, rev):
            self.reply(
                200,
                [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in revision.files.items()
                ],
            )

    def commits(self, repo: str, rev: str) -> None:
        if revision := self.lookup(repo, rev):
            self.reply(
                200,
                [
                    {
                        "id": commit.sha,
                        "title": "a commit",
                        "message": "",
                        "date": DATE,
                        "authors": [{"user": "someone"}],
                    }
                    for commit in revision.history()
                ],
            )

    def discussions(self, repo: str) -> None:
        items = self.server.repos[repo].discussions
        self.reply(200, {"count": len(items), "start": 0, "discussions": items})

    def resolve(self, repo: str, rev: str, path: str) -> None:
        revision = self.lookup(repo, rev)
        if revision and path not in revision.files:
            self.reply(
                404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": revision.sha}
            )
        elif revision:
            data = revision.files[path]
            self.reply(200, data, {"X-Repo-Commit": revision.sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})


def pull_request(num: int, author: str, repo_id: str) -> dict:
    return {
        "num": num,
        "title": CONVERSION_TITLE,
        "author": {"name": author},
        "createdAt": DATE,
        "status": "open",
        "isPullRequest": True,
        "repo": {"name": repo_id, "type": "model"},
    }


def converted_repo(
    repo_id: str, pickle_only: dict[str, bytes], weights: bytes, author: str, main_moved_on: bool = False
) -> Repo:
    """Pickle-only main, and a conversion PR (as SFconvertbot opens them) adding model.safetensors."""
    base = Revision(pickle_only)
    conversion = Revision({**pickle_only, "model.safetensors": weights}, parent=base)
    main_rev = Revision({**pickle_only, "README.md": b"edited later"}, parent=base) if main_moved_on else base
    return Repo({"main": main_rev, "refs/pr/1": conversion}, [pull_request(1, author, repo_id)])


@pytest.fixture(scope="module")
def repos(tiny_model_dir) -> dict[str, Repo]:
    """The tiny Pegasus laid out as the Hub repos this module needs: small real files, built once."""
    import torch
    from safetensors.torch import load_file

    files = {item.name: item.read_bytes() for item in tiny_model_dir.iterdir() if item.is_file()}
    pickled = io.BytesIO()
    torch.save(load_file(tiny_model_dir / "model.safetensors"), pickled)
    weights = files["model.safetensors"]
    pickle_only = {name: data for name, data in files.items() if name != "model.safetensors"}
    pickle_only["pytorch_model.bin"] = pickled.getvalue()
    return {
        "org/safe-model": Repo({"main": Revision(files)}),
        "org/pickle-model": converted_repo("org/pickle-model", pickle_only, weights, CONVERSION_BOT),
        "org/impostor-model": converted_repo("org/impostor-model", pickle_only, weights, "someone-else"),
        "org/stale-model": converted_repo("org/stale-model", pickle_only, weights, CONVERSION_BOT, True),
    }


@pytest.fixture
def hub(repos, tmp_path, monkeypatch):
    """The stand-in Hub as HF_ENDPOINT, online, with an empty Hugging Face cache of this test's own."""
    from huggingface_hub import constants

    server = StandInHub(repos)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for variable in OFFLINE_VARIABLES:  # conftest sets them all; any one would stop the Hub probe
        monkeypatch.delenv(variable, raising=False)
    # huggingface_hub read these at import, maybe before conftest's isolated HF_HOME: set them as read.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield server
    server.stop()


def go_offline(monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def summarize(args: list[str]):
    return CliRunner().invoke(main, [*args, "--num-beams", "1", "--max-new-tokens", "8"], input=CHATS)


def fetched(server: StandInHub, name: str) -> bool:
    """Whether a file of that name was downloaded (at whatever revision)."""
    return any(
        line.startswith("GET /") and "/resolve/" in line and line.endswith(f"/{name}") for line in server.requests
    )


# ----------------------------------------------------------------------------- the tests


def test_main_with_safetensors_is_downloaded_and_named(hub, repos):
    lines: list[str] = []
    folder = Path(resolve_model("org/safe-model", log=lines.append))
    served = repos["org/safe-model"].revisions["main"].files
    assert (folder / "model.safetensors").read_bytes() == served["model.safetensors"]
    assert lines == [f"model org/safe-model: revision main, downloaded from {hub.url}"]
    assert not any("/discussions" in line for line in hub.requests)  # main is enough: no PR lookup


def test_pickle_only_main_serves_the_bot_conversion_through_the_cli(hub):
    result = summarize(["-m", "org/pickle-model"])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [row["id"] for row in rows] == ["c0", "c1", "c2"] and all(isinstance(row["summary"], str) for row in rows)
    assert (
        "model org/pickle-model: revision refs/pr/1 (the safetensors conversion by SFconvertbot; main has only "
        f"pickle weights), downloaded from {hub.url}"
    ) in result.stderr
    assert fetched(hub, "model.safetensors") and not fetched(hub, "pytorch_model.bin")


@pytest.mark.parametrize("repo_id", ["org/impostor-model", "org/stale-model"])
def test_a_conversion_by_anyone_else_or_of_an_older_main_is_ignored(hub, repo_id):
    result = summarize(["-m", repo_id])
    assert result.exit_code == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "only pickle weights (*.bin) on main" in result.stderr and "--allow-pickle" in result.stderr
    assert not fetched(hub, "model.safetensors")
    lines: list[str] = []
    folder = Path(resolve_model(repo_id, allow_pickle=True, log=lines.append))
    assert (folder / "pytorch_model.bin").is_file() and not any(folder.glob("*.safetensors"))
    assert lines == [f"model {repo_id}: revision main, downloaded from {hub.url}"]


def test_finetune_names_its_own_pickle_setting(hub, tmp_path):
    from dataclasses import replace

    from dialogsum_batch.training.presets import SMOKE
    from dialogsum_batch.training.trainer import base_model_path

    config = replace(SMOKE, base_model="org/impostor-model")
    with pytest.raises(ModelError, match=r"only pickle weights .*; set allow_pickle=true") as caught:
        base_model_path(config, tmp_path, log=lambda line: None)
    assert not isinstance(caught.value, PickleOnlyError) and "--allow-pickle" not in str(caught.value)


@pytest.mark.parametrize("repo_id, revision", [("org/safe-model", "main"), ("org/pickle-model", "refs/pr/1")])
def test_a_cached_revision_needs_no_network(hub, monkeypatch, repo_id, revision):
    first = resolve_model(repo_id)
    asked = len(hub.requests)
    lines: list[str] = []
    assert resolve_model(repo_id, log=lines.append) == first and len(hub.requests) == asked  # Hub not asked
    hub.stop()
    assert resolve_model(repo_id, log=lines.append) == first
    go_offline(monkeypatch)
    assert resolve_model(repo_id, log=lines.append) == first
    assert len(lines) == 3 and all(line.startswith(f"model {repo_id}: revision {revision}") for line in lines)
    assert all(line.endswith("from the Hugging Face cache") for line in lines)


@pytest.mark.parametrize("cut_off", ["HF_HUB_OFFLINE", "Hub stopped"])
def test_offline_and_not_cached_fails_in_seconds_with_one_line(hub, monkeypatch, cut_off):
    if cut_off == "HF_HUB_OFFLINE":
        go_offline(monkeypatch)
    else:
        hub.stop()
    started = time.monotonic()
    result = summarize(["-m", "org/safe-model"])
    assert time.monotonic() - started < 5
    assert result.exit_code == 1 and result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert "'org/safe-model' is not cached and the Hugging Face Hub is unreachable" in result.stderr
