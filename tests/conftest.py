"""Shared fixtures: isolated HOME and caches, the tiny Pegasus built once, a fake backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from dialogsum_batch.backends import BACKENDS, Encoded, Generated, OutOfMemory

# Property tests: a few seconds' worth in CI, thousands of examples under `invoke fuzz`.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz", parent=settings.get_profile("ci"), max_examples=int(os.environ.get("DIALOGSUM_FUZZ_EXAMPLES", "2000"))
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; two threads on two busy cores are several times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's home or Hugging Face caches, and none reaches the Hub."""
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("DIALOGSUM_MODEL", raising=False)
    monkeypatch.delenv("DIALOGSUM_CACHE", raising=False)  # CTranslate2 conversions go under the isolated HOME
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny random-weight Pegasus, built once per test session (a few seconds)."""
    from dialogsum_batch.fixtures.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, float]:
    """``invoke finetune --preset smoke --output-dir DIR``, once per session, timed (about a minute)."""
    from invoke import Context

    from dialogsum_batch.tasks.training import finetune as finetune_task

    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    started = time.perf_counter()
    finetune_task(Context(), preset="smoke", output_dir=str(run_dir))
    return run_dir, time.perf_counter() - started


@pytest.fixture(scope="session")
def trained_model_dir(smoke_run) -> Path:
    """The tiny Pegasus fine-tuned on synthetic chats: confident logits, so agreement checks measure the
    code under test (an export, batching) rather than the near-ties of random weights."""
    return smoke_run[0]


class FakeBackend:
    """Summarizes by echoing a dialogue's first turn; counts batches; can run out of memory on demand."""

    name = "fake"
    device = "cpu"

    def __init__(self, max_source_length: int = 64, oom_above: int | None = None, oom_ids: Sequence[int] = ()):
        self.max_source_length = max_source_length
        self.oom_above = oom_above  # batches with more rows than this raise OutOfMemory
        self.oom_ids = set(oom_ids)  # a row starting with one of these ids always runs out of memory
        self.batches: list[int] = []
        self.texts: dict[int, str] = {}

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        result = []
        for text in texts:
            words = text.split()
            key = len(self.texts) + 2
            self.texts[key] = text.split("\n")[0]
            ids = [key] + [3] * (len(words))
            truncated = len(ids) > self.max_source_length
            result.append(Encoded(ids[: self.max_source_length], truncated))
        return result

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]:
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise OutOfMemory("fake out of memory")
        if any(row[0] in self.oom_ids for row in batch):
            raise OutOfMemory("fake out of memory")
        self.batches.append(len(batch))
        return [Generated(self.texts[row[0]], 3) for row in batch]

    def describe(self) -> dict:
        return {"backend": self.name}


@pytest.fixture
def fake_backend(monkeypatch) -> FakeBackend:
    """A FakeBackend in the backend registry, chosen the way a user chooses a plugin's (DIALOGSUM_BACKEND)."""
    backend = FakeBackend()
    monkeypatch.setitem(BACKENDS, "fake", lambda model, decode, log=None: backend)
    monkeypatch.setenv("DIALOGSUM_BACKEND", "fake")
    return backend


REPO = Path(__file__).resolve().parent.parent
TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")  # after sys.executable


def launch_env() -> dict[str, str]:
    """The environment of a command run as a child process (under a launcher or not): this checkout importable,
    one OpenMP thread per process, and no launcher's world inherited from the test run itself."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


FAKE_COMMAND = """
import os, sys, time
sys.path.insert(0, {tests!r})
from conftest import FakeBackend
from dialogsum_batch.backends import BACKENDS


class Paced(FakeBackend):
    def generate(self, batch):
        time.sleep({delay!r})
        return super().generate(batch)


BACKENDS["fake"] = lambda model, decode, log=None: Paced()
os.environ["DIALOGSUM_BACKEND"] = "fake"
from dialogsum_batch.cli import main
main(sys.argv[1:], prog_name="dialogsum-batch")
"""


def start_fake_command(args: Sequence[str], tmp_path: Path, delay: float = 0.0, **popen) -> subprocess.Popen:
    """``dialogsum-batch ARGS`` in a process of its own, the fake backend taking ``delay`` seconds a batch
    (text pipes for stdin, stdout and stderr unless ``popen`` says otherwise)."""
    script = tmp_path / "fake_command.py"
    script.write_text(FAKE_COMMAND.format(tests=str(Path(__file__).parent), delay=delay), encoding="utf-8")
    streams = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, text=True, **streams)


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the fine-tuned smoke model pays for a training run (~20 s once a session): slow by nature."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
