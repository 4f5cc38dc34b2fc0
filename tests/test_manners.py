"""Issue 24's manners, through the front door: what a cron user or a person at a terminal meets first."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import read_jsonl, start_fake_command, write_jsonl

from dialogsum_batch.cli import main


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def as_jsonl(rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


# ---------------------------------------------------------------------------- an endless line


def feed_for_ever(process: subprocess.Popen, head: str, seconds: float) -> threading.Thread:
    """Write ``head``, then bytes with no newline, for up to ``seconds`` or until the process stops reading."""

    def feed() -> None:
        deadline = time.monotonic() + seconds
        try:
            process.stdin.write(head)
            while time.monotonic() < deadline and process.poll() is None:
                process.stdin.write("x" * 65536)
                process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "head", ['{"id": "ok", "dialogue": "A: hi"}\n{"dialogue": "', '{"dialogue": "'], ids=["after-a-record", "first"]
)
def test_fail_mode_stops_at_a_line_that_never_ends(tmp_path, head):
    process = start_fake_command(["-m", "x", "--max-line-bytes", "1000", "--on-error", "fail"], tmp_path)
    feeder = feed_for_ever(process, head, seconds=60)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("--on-error fail kept reading a line that never ends")
    feeder.join(5)
    stderr, stdout = process.stderr.read(), process.stdout.read()
    assert code == 1
    assert "<stdin>:" in stderr and "over the 1,000-byte limit (--max-line-bytes)" in stderr
    assert [row["id"] for row in read_jsonl(stdout)] == (["ok"] if head.startswith('{"id"') else [])


# ---------------------------------------------------------------------------- --metrics-out on every ending

DIALOGUES = [{"id": f"d{i}", "dialogue": f"A: message {i}\nB: reply {i}"} for i in range(3)]


def metrics_of(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_metrics_name_the_run_model_versions_and_options(fake_backend, tmp_path):
    metrics = tmp_path / "m.json"
    result = run(["-m", str(tmp_path), "--metrics-out", str(metrics), "--num-beams", "3"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 0, result.stderr
    report = metrics_of(metrics)
    assert (report["status"], report["exit_code"], report["records"]) == ("ok", 0, 3)
    assert report["model"]["path"] == str(tmp_path.resolve()) and report["model"]["backend"] == "fake"
    assert report["versions"]["dialogsum-batch"] and report["versions"]["python"]
    assert report["options"]["decode"]["num_beams"] == 3 and report["options"]["on_error"] == "fail"
    assert report["options"]["model"]["dtype"] == "auto" and report["output"] == "-"


def test_a_failed_run_replaces_an_earlier_runs_metrics(fake_backend, tmp_path):
    metrics = tmp_path / "m.json"
    metrics.write_text('{"status": "ok", "from": "last night"}\n')
    bad = as_jsonl(DIALOGUES[:1]) + "not json\n" + as_jsonl(DIALOGUES[1:])
    result = run(["-m", "x", "--metrics-out", str(metrics)], stdin=bad)
    assert result.exit_code == 1
    report = metrics_of(metrics)
    assert report["status"] == "failed" and report["exit_code"] == 1 and "from" not in report
    assert "<stdin>:2: invalid JSON" in report["error"] and report["records"] == 1


def test_a_model_that_cannot_load_still_writes_failed_metrics(tmp_path):
    metrics = tmp_path / "m.json"
    metrics.write_text('{"status": "ok"}\n')
    result = run(["-m", str(tmp_path / "nope"), "--metrics-out", str(metrics)], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1
    report = metrics_of(metrics)
    assert report["status"] == "failed" and "does not exist" in report["error"] and report["records"] == 0


def test_skipped_records_are_partial(fake_backend, tmp_path):
    metrics = tmp_path / "m.json"
    result = run(["-m", "x", "--on-error", "skip", "--metrics-out", str(metrics)], stdin=as_jsonl(DIALOGUES) + "[]\n")
    assert result.exit_code == 3
    assert (metrics_of(metrics)["status"], metrics_of(metrics)["errors"]) == ("partial", 1)


def test_an_interrupted_run_says_so_in_its_metrics_and_stdout_is_not_resumable(tmp_path):
    rows = [{"id": f"k{i}", "dialogue": f"A: message {i}"} for i in range(400)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    metrics = tmp_path / "m.json"
    args = ["-m", "x", str(source), "--max-batch-size", "2", "--sort-window", "4", "--metrics-out", str(metrics)]
    process = start_fake_command(args, tmp_path, delay=0.05, stdin=subprocess.DEVNULL)
    assert process.stdout.readline()  # summaries are flowing
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    stderr = process.stderr.read()
    assert "interrupted by SIGINT" in stderr and "--resume" not in stderr  # stdout cannot be read back
    report = metrics_of(metrics)
    assert report["status"] == "interrupted" and report["exit_code"] == 130 and 0 < report["records"] < 400


# ---------------------------------------------------------------------------- | head -1


def test_head_ends_the_job_quietly_with_the_sigpipe_status(tmp_path):
    rows = [{"id": f"k{i}", "dialogue": f"A: message {i}"} for i in range(300)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    metrics = tmp_path / "m.json"
    args = ["-m", "x", str(source), "--max-batch-size", "1", "--sort-window", "2", "--metrics-out", str(metrics)]
    producer = start_fake_command(args, tmp_path, delay=0.02, stdin=subprocess.DEVNULL)
    head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, text=True, timeout=60)
    producer.stdout.close()  # only head holds the pipe now, as in a shell pipeline
    code = producer.wait(timeout=60)
    stderr = producer.stderr.read()
    assert json.loads(head.stdout)["id"] == "k0"
    assert code == 141, stderr
    assert "Broken pipe" not in stderr and "Traceback" not in stderr and "error" not in stderr.lower()
    assert metrics_of(metrics)["status"] == "interrupted"


# ---------------------------------------------------------------------------- field options that match nothing


def test_a_text_field_no_record_has_names_the_fields_found(fake_backend):
    result = run(["-m", "x", "--text-field", "chat"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1
    assert "<stdin>:1: field 'chat' is missing (--text-field); fields found: id, dialogue" in result.stderr


def test_skip_mode_with_a_field_no_record_has_fails_instead_of_zero_summaries(fake_backend, tmp_path):
    metrics = tmp_path / "m.json"
    args = ["-m", "x", "--text-field", "chat", "--on-error", "skip", "--metrics-out", str(metrics)]
    result = run(args, stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1 and result.stdout == ""
    assert "no record has field 'chat' (--text-field); fields found: dialogue, id" in result.stderr
    assert metrics_of(metrics)["status"] == "failed"


def test_skip_mode_with_some_records_lacking_the_field_is_still_partial(fake_backend):
    rows = [*DIALOGUES, {"id": "x", "text": "A: other shape"}]
    result = run(["-m", "x", "--on-error", "skip"], stdin=as_jsonl(rows))
    assert result.exit_code == 3 and len(read_jsonl(result.stdout)) == 3
    assert "field 'dialogue' is missing (--text-field); fields found: id, text" in result.stderr


def test_an_id_field_chosen_by_name_must_be_there(fake_backend):
    result = run(["-m", "x", "--id-field", "uid"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1
    assert "field 'uid' is missing (--id-field); fields found: id, dialogue" in result.stderr
    skipped = run(["-m", "x", "--id-field", "uid", "--on-error", "skip"], stdin=as_jsonl(DIALOGUES))
    assert skipped.exit_code == 1 and "no record has field 'uid' (--id-field)" in skipped.stderr


def test_keep_fields_refuses_output_names_and_warns_of_absent_ones(fake_backend):
    refused = run(["-m", "x", "--keep-fields", "lang,summary"], stdin=as_jsonl(DIALOGUES))
    assert refused.exit_code == 2 and "--keep-fields summary" in refused.stderr
    rows = [{**row, "lang": "en"} for row in DIALOGUES]
    result = run(["-m", "x", "--keep-fields", "lang,langauge,dialogue"], stdin=as_jsonl(rows))
    assert result.exit_code == 0 and read_jsonl(result.stdout)[0]["lang"] == "en"
    assert "--keep-fields: no record has 'langauge'" in result.stderr and "'lang'" not in result.stderr
    assert "'dialogue'" not in result.stderr and read_jsonl(result.stdout)[0]["dialogue"] == DIALOGUES[0]["dialogue"]


# ---------------------------------------------------------------------------- evaluate, quickstart


def test_evaluate_refuses_a_non_empty_output_folder_unless_forced(tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", [{**row, "summary": "They talk."} for row in DIALOGUES])
    args = ["evaluate", "--baseline", "lead3", "--data", str(data), "--output-dir", str(tmp_path / "eval")]
    args += ["--bootstrap", "10"]
    assert run(args).exit_code == 0
    before = (tmp_path / "eval" / "metrics.json").read_bytes()
    again = run(args)
    assert again.exit_code == 1 and "is not empty (metrics.json, predictions.jsonl" in again.stderr
    assert "--force" in again.stderr and (tmp_path / "eval" / "metrics.json").read_bytes() == before
    assert run([*args, "--force"]).exit_code == 0
    assert "--force" in run(["evaluate", "--help"]).stdout


def test_quickstart_can_run_twice():
    from invoke import MockContext, Result

    from dialogsum_batch.tasks.core import quickstart

    context = MockContext(run=Result(), repeat=True)
    for _ in range(2):
        quickstart(context, output_dir="runs/q")
    finetunes = [call.args[0] for call in context.run.call_args_list if " finetune " in call.args[0]]
    # a finished model folder is kept ("nothing to resume"), not refused as "already holds a run"
    assert len(finetunes) == 2 and all(command.endswith("--resume") for command in finetunes)


# ---------------------------------------------------------------------------- checked before the model loads


@pytest.fixture
def loads(monkeypatch, fake_backend):
    """How many times a model was loaded."""
    from dialogsum_batch.backends import BACKENDS

    count = []
    monkeypatch.setitem(BACKENDS, "fake", lambda model, decode, log=None: count.append(1) or fake_backend)
    return count


def test_a_missing_input_fails_before_the_model_loads(loads, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", DIALOGUES)
    result = run(["-m", "x", str(good), str(tmp_path / "typo.jsonl")])
    assert result.exit_code == 1 and loads == [] and result.stdout == ""
    assert f"{tmp_path / 'typo.jsonl'}: cannot open (No such file or directory)" in result.stderr
    skipped = run(["-m", "x", str(good), str(tmp_path / "typo.jsonl"), "--on-error", "skip"])
    assert skipped.exit_code == 3 and len(read_jsonl(skipped.stdout)) == 3  # skip goes past it, as before
    nothing = run(["-m", "x", str(tmp_path / "typo.jsonl"), "--on-error", "skip"])
    assert nothing.exit_code == 1 and len(loads) == 1  # every input missing: nothing to do, no model loaded


def test_a_missing_local_model_folder_is_not_a_hub_lookup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    result = run(["-m", "runs/pegasus-samsum"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1
    assert "model folder 'runs/pegasus-samsum' does not exist (runs/ has no 'pegasus-samsum')" in result.stderr
    assert "Hub" not in result.stderr


def test_metrics_through_a_symlink_replace_its_file_and_keep_the_link(fake_backend, tmp_path):
    target, link = tmp_path / "real.json", tmp_path / "latest.json"
    target.write_text('{"status": "ok", "from": "last night"}\n')
    link.symlink_to(target)
    assert run(["-m", "x", "--metrics-out", str(link)], stdin=as_jsonl(DIALOGUES)).exit_code == 0
    assert link.is_symlink() and metrics_of(target)["records"] == 3 and "from" not in metrics_of(target)


# ---------------------------------------------------------------------------- options that cannot work


def test_decoding_that_cannot_fit_is_a_usage_error_before_loading(fake_backend, tiny_model_dir, monkeypatch):
    import importlib

    command = importlib.import_module("dialogsum_batch.cli.summarize")  # the module, not the command it holds
    monkeypatch.setattr(command, "machine_memory", lambda: 2 * 1024**3)  # a 2 GiB machine
    model = ["-m", str(tiny_model_dir)]
    beams = run([*model, "--num-beams", "4000"], stdin=as_jsonl(DIALOGUES))
    assert beams.exit_code == 2 and "--num-beams 4000" in beams.stderr and "this machine has 2 GiB" in beams.stderr
    too_long = run([*model, "--max-new-tokens", "5000"], stdin=as_jsonl(DIALOGUES))
    assert too_long.exit_code == 2 and "past the model's 1024 decoder positions" in too_long.stderr
    assert fake_backend.batches == []  # nothing ran
    assert run([*model, "--num-beams", "4"], stdin=as_jsonl(DIALOGUES)).exit_code == 0
    for option in ("--max-batch-size", "--batch-tokens", "--sort-window", "--num-beams"):
        assert run([*model, option, "0"], stdin=as_jsonl(DIALOGUES)).exit_code == 2


# ---------------------------------------------------------------------------- model cards


def card_python(card: str) -> str:
    return card.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_exported_card_snippet_runs_on_transformers_5_and_links_only_what_is_there(tiny_model_dir, tmp_path):
    import os
    import sys

    from conftest import REPO

    from dialogsum_batch.export import ExportSettings, export_model

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for item in tiny_model_dir.iterdir():
        (run_dir / item.name).symlink_to(item)
    (run_dir / "training_curves.png").write_bytes(b"png")
    (run_dir / "README.md").write_text("# run\n\n![loss and ROUGE over training](training_curves.png)\n")
    out = export_model(ExportSettings(str(run_dir), str(tmp_path / "serve"), "hf"))
    card = (out / "README.md").read_text()
    assert 'pipeline("summarization"' not in card and "](training_curves.png)" not in card
    assert "loss and ROUGE over training (`training_curves.png` in the source run folder)" in card
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    ran = subprocess.run(
        [sys.executable, "-c", card_python(card)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    ct2 = export_model(ExportSettings(str(run_dir), str(tmp_path / "ct2"), "ctranslate2", quantization="float32"))
    assert "library_name: ctranslate2" in (ct2 / "README.md").read_text()


# ---------------------------------------------------------------------------- progress


def test_progress_on_files_has_a_total_a_percentage_and_an_eta(fake_backend, tmp_path, monkeypatch):
    import gzip

    from dialogsum_batch.backends import BACKENDS

    slow_load = lambda model, decode, log=None: time.sleep(1.5) or fake_backend  # noqa: E731
    monkeypatch.setitem(BACKENDS, "fake", slow_load)

    plain = write_jsonl(tmp_path / "a.jsonl", DIALOGUES)
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(as_jsonl(DIALOGUES).encode()))
    total = plain.stat().st_size + packed.stat().st_size
    result = run(["-m", "x", str(plain), str(packed), "--progress", "--max-batch-size", "1"])
    assert result.exit_code == 0, result.stderr
    frames = result.stderr.replace("\r", "\n")
    assert "loading model…" in frames  # the bar is there before the model, saying what it waits for
    last = [line for line in frames.splitlines() if line.startswith("summarizing")][-1]
    assert "100%" in last and f"{total}/{total} [" in last and "6 dialogues" in last
    assert "[00:00<00:00" in last  # elapsed<remaining (the ETA); the 1.5 s load is not in the rate or the clock
    first = next(line for line in frames.splitlines() if line.startswith("loading model…"))
    assert f"0/{total} [" in first and "0%" in first  # the total is known before anything is read


def test_stdin_progress_counts_dialogues_and_no_flag_means_no_bar(fake_backend):
    counted = run(["-m", "x", "--progress"], stdin=as_jsonl(DIALOGUES))
    frames = counted.stderr.replace("\r", "\n").splitlines()
    assert frames[1].startswith("loading model…: 0dlg")  # at once, before the model's own log line
    assert any(line.startswith("summarizing: 3dlg [") for line in frames)
    assert any(line.endswith("info: model x on cpu (fake)") for line in frames)  # a log line never glued to the bar
    assert "loading model…" not in run(["-m", "x"], stdin=as_jsonl(DIALOGUES)).stderr  # not a terminal
    assert "loading model…" not in run(["-m", "x", "--progress", "-q"], stdin=as_jsonl(DIALOGUES)).stderr


def test_stdin_on_a_terminal_gets_a_one_line_hint(tmp_path):
    import os
    import pty

    main_fd, terminal = pty.openpty()
    process = start_fake_command(["-m", "x"], tmp_path, stdin=terminal)
    os.close(terminal)
    try:
        hint = process.stderr.readline()
        assert "reading dialogues from the terminal" in hint and "Ctrl-D" in hint
        os.write(main_fd, b'{"id": "t", "dialogue": "A: typed"}\n\x04')
        assert process.wait(timeout=30) == 0
        assert [row["id"] for row in read_jsonl(process.stdout.read())] == ["t"]
    finally:
        process.kill() if process.poll() is None else None
        os.close(main_fd)


def test_an_exports_datasets_are_only_those_its_run_card_knows(tiny_model_dir, tmp_path):
    from dialogsum_batch.export import ExportSettings, export_model

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for item in tiny_model_dir.iterdir():
        if item.name != "README.md":
            (run_dir / item.name).symlink_to(item)
    (run_dir / "README.md").write_text("---\nlibrary_name: transformers\n---\n# run\n")  # trained on local data
    (run_dir / "train_config.json").write_text(json.dumps({"data": "mydata/chats"}))  # relative: not here
    out = export_model(ExportSettings(str(run_dir), str(tmp_path / "serve"), "hf"))
    assert "datasets:" not in (out / "README.md").read_text()
