"""Cron-grade behaviour: bad input, resume after SIGKILL, signals, the lock, shards, OOM splits."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FakeBackend, read_jsonl, start_fake_command, write_jsonl

from dialogsum_batch.backends import BACKENDS
from dialogsum_batch.cli import main
from dialogsum_batch.inference.outputs import OutputLock

REPO = Path(__file__).resolve().parent.parent


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def good(i: int) -> bytes:
    return json.dumps({"id": f"g{i}", "dialogue": f"P{i}: hello number {i}\nQ: ok"}).encode() + b"\n"


def mixed_file(path: Path) -> Path:
    """Good records between every kind of bad line; line numbers noted in BAD."""
    lines = [
        b"\xef\xbb\xbf" + good(0),  # 1: UTF-8 BOM, fine
        b"{not json\n",  # 2
        good(1).replace(b"\n", b"\r\n"),  # 3: CRLF, fine
        b"[1, 2]\n",  # 4: not an object
        b'{"id": "m"}\n',  # 5: missing dialogue
        b'{"id": "e", "dialogue": ""}\n',  # 6: empty
        b'{"id": "w", "dialogue": "  \\n\\t "}\n',  # 7: whitespace only
        b'{"id": "n", "dialogue": 42}\n',  # 8: not a string
        b'{"id": "u", "dialogue": "caf\xe9"}\n',  # 9: invalid UTF-8
        b"\x00\x01\x02binary junk\xff\n",  # 10: binary
        json.dumps({"id": "long", "dialogue": "A: " + "very " * 5000}).encode() + b"\n",  # 11: truncated, fine
        good(2),  # 12
    ]
    path.write_bytes(b"".join(lines))
    return path


BAD = {
    2: "invalid JSON",
    4: "expected a JSON object",
    5: "is missing",
    6: "is empty",
    7: "is empty",
    8: "must be a string",
    9: "invalid UTF-8",
    10: "binary data",
}


def test_mixed_bad_input_skip_keeps_good_records_in_order(fake_backend, tmp_path):
    source = mixed_file(tmp_path / "mixed.jsonl")
    errors = tmp_path / "errors.jsonl"
    result = run(["-m", "x", str(source), "--on-error", "skip", "--errors-out", str(errors)])
    assert result.exit_code == 3
    rows = read_jsonl(result.stdout)
    assert [r["id"] for r in rows] == ["g0", "g1", "long", "g2"]
    assert rows[2]["truncated"] is True
    bad = read_jsonl(errors.read_text())
    assert [b["line"] for b in bad] == sorted(BAD)
    for record in bad:
        assert BAD[record["line"]] in record["reason"] and record["source"] == str(source)
        assert record["raw"] is not None and len(record["raw"]) <= 503
    assert "8 errors" in result.stderr


def test_fail_stops_at_first_bad_record_after_writing_those_before(fake_backend, tmp_path):
    source = mixed_file(tmp_path / "mixed.jsonl")
    result = run(["-m", "x", str(source)])
    assert result.exit_code == 1
    assert [r["id"] for r in read_jsonl(result.stdout)] == ["g0"]
    assert f"{source}:2: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_unopenable_input_is_one_line(fake_backend, tmp_path):
    result = run(["-m", "x", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 1 and "missing.jsonl: cannot open" in result.stderr


def test_resume_drops_a_torn_line_and_skips_done_ids(fake_backend, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "dialogue": f"A: msg {i}"} for i in range(6)])
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "r0", "summary": "x"}\n{"id": "r3", "summary": "y"}\n{"id": "r4", "summ', encoding="utf-8")
    result = run(["-m", "x", str(source), "-o", str(out), "--resume"])
    assert result.exit_code == 0, result.stderr
    ids = [r["id"] for r in read_jsonl(out.read_text())]
    assert sorted(ids) == [f"r{i}" for i in range(6)] and len(ids) == 6
    assert "2 resumed" in result.stderr


def start_slow(args: list[str], tmp_path: Path) -> subprocess.Popen:
    return start_fake_command(args, tmp_path, delay=0.05, stdin=subprocess.DEVNULL)


def wait_for_lines(path: Path, count: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text(encoding="utf-8").count("\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {count} lines")


def slow_job(tmp_path: Path, n: int = 200) -> tuple[Path, Path, list[str]]:
    rows = [{"id": f"k{i}", "dialogue": f"A: message {i} " + "w " * (i % 17)} for i in range(n)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    args = [
        "-m",
        "x",
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--max-batch-size",
        "4",
        "--sort-window",
        "16",
        "-q",
    ]
    return source, tmp_path / "out.jsonl", args


def test_sigkill_then_resume_writes_each_record_exactly_once(tmp_path):
    _, out, args = slow_job(tmp_path)
    process = start_slow(args, tmp_path)
    wait_for_lines(out, 20)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    written_before = out.read_text(encoding="utf-8").count("\n")
    assert 20 <= written_before < 200
    resumed = start_slow(args + ["--resume"], tmp_path)
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    ids = [r["id"] for r in read_jsonl(out.read_text(encoding="utf-8"))]
    assert len(ids) == 200 and set(ids) == {f"k{i}" for i in range(200)}


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly_with_its_exit_code(tmp_path, sig, code):
    _, out, args = slow_job(tmp_path)
    process = start_slow(args, tmp_path)
    wait_for_lines(out, 8)
    process.send_signal(sig)
    assert process.wait(timeout=30) == code
    assert "interrupted by " + sig.name in process.stderr.read()
    rows = read_jsonl(out.read_text(encoding="utf-8"))  # every line whole
    assert 8 <= len(rows) < 200 and len({r["id"] for r in rows}) == len(rows)


def test_second_run_on_a_locked_output_exits_75(fake_backend, tmp_path):
    out = tmp_path / "out.jsonl"
    with OutputLock(str(out) + ".lock"):
        result = run(["-m", "x", "-o", str(out)], stdin='{"dialogue": "A: hi"}\n')
    assert result.exit_code == 75
    assert "another run is writing the same output" in result.stderr
    assert not out.exists()
    assert run(["-m", "x", "-o", str(out)], stdin='{"dialogue": "A: hi"}\n').exit_code == 0


def test_shards_partition_the_input(fake_backend, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"s{i}", "dialogue": f"A: {i}"} for i in range(60)])
    seen = []
    for index in (1, 2, 3):
        result = run(["-m", "x", str(source), "--shard", f"{index}/3"])
        ids = [r["id"] for r in read_jsonl(result.stdout)]
        assert 5 < len(ids) < 40
        seen.extend(ids)
    assert sorted(seen) == sorted(f"s{i}" for i in range(60))


def test_out_of_memory_splits_batches_and_loses_nothing(monkeypatch, tmp_path):
    backend = FakeBackend(oom_above=2)
    monkeypatch.setitem(BACKENDS, "fake", lambda model, decode, log=None: backend)
    monkeypatch.setenv("DIALOGSUM_BACKEND", "fake")
    rows = [{"id": f"o{i}", "dialogue": f"A: {i}"} for i in range(10)]
    metrics = tmp_path / "m.json"
    result = run(["-m", "x", "--metrics-out", str(metrics)], stdin="".join(json.dumps(r) + "\n" for r in rows))
    assert result.exit_code == 0
    assert [r["id"] for r in read_jsonl(result.stdout)] == [f"o{i}" for i in range(10)]
    assert max(backend.batches) <= 2 and json.loads(metrics.read_text())["oom_splits"] > 0
    assert "out of memory on a batch of" in result.stderr


def test_record_that_never_fits_becomes_an_error_record(monkeypatch, tmp_path):
    backend = FakeBackend()
    backend.oom_ids = {4}  # FakeBackend numbers texts from 2: the third record
    monkeypatch.setitem(BACKENDS, "fake", lambda model, decode, log=None: backend)
    monkeypatch.setenv("DIALOGSUM_BACKEND", "fake")
    stdin = "".join(json.dumps({"id": f"o{i}", "dialogue": f"A: {i}"}) + "\n" for i in range(5))
    errors = tmp_path / "errors.jsonl"
    result = run(["-m", "x", "--on-error", "skip", "--errors-out", str(errors)], stdin=stdin)
    assert result.exit_code == 3
    assert [r["id"] for r in read_jsonl(result.stdout)] == ["o0", "o1", "o3", "o4"]
    assert "out of memory even alone" in read_jsonl(errors.read_text())[0]["reason"]
    backend.texts.clear()
    assert run(["-m", "x"], stdin=stdin).exit_code == 1


def test_json_log_lines_carry_timestamps(fake_backend):
    result = run(["-m", "x", "--log-format", "json"], stdin='{"dialogue": "A: hi"}\n')
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert all("time" in line and "level" in line for line in lines)
    assert lines[-1]["summary"]["records"] == 1


# ---------------------------------------------------------------------------- found in review


def test_an_output_that_is_also_an_input_is_refused_before_anything_is_written(fake_backend, tmp_path):
    (tmp_path / "g").mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        write_jsonl(tmp_path / "g" / name, [{"id": name, "dialogue": "A: hi"}])
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "g" / "a.jsonl")
    # A quoted glob that matches -o is no clash: the job leaves its own files out (tests/test_hostile_files.py).
    cases = [
        [str(tmp_path / "g" / "a.jsonl"), str(tmp_path / "g" / "b.jsonl"), "-o", str(tmp_path / "g" / "b.jsonl")],
        [str(tmp_path / "link.jsonl"), "-o", str(tmp_path / "g" / "a.jsonl")],
        [str(tmp_path / "g" / "a.jsonl"), "--on-error", "skip", "--errors-out", str(tmp_path / "g" / "a.jsonl")],
        [str(tmp_path / "g" / "a.jsonl"), "-o", str(tmp_path / "o.jsonl"), "--metrics-out", str(tmp_path / "o.jsonl")],
    ]
    for args in cases:
        result = run(["-m", "x", *args])
        assert result.exit_code == 2, args
    assert all(len(read_jsonl((tmp_path / "g" / n).read_text())) == 1 for n in ("a.jsonl", "b.jsonl"))


def test_kept_fields_never_override_what_the_run_wrote(fake_backend):
    row = {"uid": "u1", "id": "other", "dialogue": "A: hi", "summary": "INPUT", "ref": "hello", "rouge": "x", "k": 1}
    out = read_jsonl(
        run(
            ["-m", "x", "--id-field", "uid", "--reference-field", "ref", "--keep-fields", "*"], stdin=json.dumps(row)
        ).stdout
    )[0]
    assert out["id"] == "u1" and out["summary"] == "A: hi" and isinstance(out["rouge"], dict) and out["k"] == 1


def test_unordered_fail_writes_every_record_before_the_bad_one(fake_backend, tmp_path):
    rows = "".join(json.dumps({"id": f"u{i}", "dialogue": f"A: {i}"}) + "\n" for i in range(6)) + '{"id": "bad"}\n'
    result = run(["-m", "x", "--unordered", "--max-batch-size", "1"], stdin=rows)
    assert result.exit_code == 1
    assert sorted(r["id"] for r in read_jsonl(result.stdout)) == [f"u{i}" for i in range(6)]


def test_resume_with_duplicate_ids_summarizes_each_occurrence_once(fake_backend, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "dialogue": f"A: {n}"} for n, i in enumerate("aab")])
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "summary": "x"}\n{"id": "a", "su', encoding="utf-8")
    assert run(["-m", "x", str(source), "-o", str(out), "--resume"]).exit_code == 0
    assert sorted(r["id"] for r in read_jsonl(out.read_text())) == ["a", "a", "b"]


def test_missing_and_corrupt_files_are_bad_records_that_skip_goes_past(fake_backend, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"id": "g", "dialogue": "A: hi"}])
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(
        gzip.compress(b"".join(json.dumps({"id": f"c{i}", "dialogue": "A: hey"}).encode() + b"\n" for i in range(50)))[
            :-30
        ]
    )
    (tmp_path / "junk.jsonl.gz").write_bytes(b"not gzip at all\n")
    inputs = [str(tmp_path / "missing.jsonl"), str(cut), str(tmp_path / "junk.jsonl.gz"), str(good)]
    errors = tmp_path / "errors.jsonl"
    result = run(["-m", "x", *inputs, "--on-error", "skip", "--errors-out", str(errors)])
    assert result.exit_code == 3 and "Traceback" not in result.stderr
    ids = [r["id"] for r in read_jsonl(result.stdout)]
    assert ids[-1] == "g" and len(ids) > 10 and ids[:3] == ["c0", "c1", "c2"]
    reasons = [e["reason"] for e in read_jsonl(errors.read_text())]
    assert reasons[0].startswith("cannot open") and "cannot read past line" in reasons[1] and len(reasons) == 3
    failed = run(["-m", "x", str(cut)])
    assert failed.exit_code == 1 and "cut.jsonl.gz: cannot read past line" in failed.stderr


def test_resume_does_not_repeat_or_glue_error_lines(fake_backend, tmp_path):
    source = mixed_file(tmp_path / "mixed.jsonl")
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    args = ["-m", "x", str(source), "-o", str(out), "--on-error", "skip", "--errors-out", str(errors)]
    assert run(args).exit_code == 3
    with open(errors, "a", encoding="utf-8") as stream:
        stream.write('{"source": "torn')
    assert run(args + ["--resume"]).exit_code == 3
    assert [e["line"] for e in read_jsonl(errors.read_text())] == sorted(BAD)


def test_bad_threads_and_devices_are_usage_errors(fake_backend):
    assert run(["--threads", "-1"], stdin="").exit_code == 2
    assert run(["--device", "foo"], stdin="").exit_code == 2
    assert run(["--device", "cuda:x"], stdin="").exit_code == 2


def test_unwritable_output_is_one_line(fake_backend, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(["-m", "x", "-o", str(blocker / "out.jsonl")], stdin='{"dialogue": "A: hi"}\n')
    assert result.exit_code == 1 and "cannot" in result.stderr and "Traceback" not in result.stderr
