"""The option table behind ``dialogsum-batch finetune`` and ``invoke finetune``, and the run both end in.

No training here: ``trainer.finetune`` is replaced where a test gets that far, so these take a second.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from invoke import Context
from invoke.exceptions import Exit
from invoke.parser import ParserContext

from dialogsum_batch.cli import main as cli_main
from dialogsum_batch.cli.finetune import finetune as finetune_command
from dialogsum_batch.tasks.training import finetune as finetune_task
from dialogsum_batch.training import trainer
from dialogsum_batch.training.options import INTERRUPTED, OPTIONS, TRAINING_OPTIONS, module_arguments

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FLAGS = {"--num-processes", "--accelerate-config"}
LOG_FLAGS = {"--log-format", "--quiet", "--debug", "--help"}


def command_help() -> dict[str, str]:
    """Each long flag of ``dialogsum-batch finetune`` but the logging ones, and its help."""
    return {
        flag: param.help
        for param in finetune_command.params
        for flag in param.opts
        if flag.startswith("--") and flag not in LOG_FLAGS
    }


def parsed(arguments: list[str]) -> dict:
    """What the command reads from ``arguments``: the given options only, lists as lists."""
    params = finetune_command.make_context("finetune", list(arguments)).params
    return {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in params.items()
        if value not in (None, False, ()) and name not in ("log_format",)
    }


def main(arguments: list[str]):
    return CliRunner().invoke(cli_main, ["finetune", *arguments])


def invoke_help() -> dict[str, str]:
    """Each long flag of the Invoke task, as Invoke's own parser builds it, and its help."""
    context = ParserContext(name="finetune", args=finetune_task.get_arguments())
    return {flag: argument.help for flag, argument in context.flags.items() if flag.startswith("--")}


def test_module_and_task_offer_the_same_options_from_the_table():
    table = {option.flag: option.help for option in OPTIONS}
    assert invoke_help() == table
    assert command_help() == table
    assert set(table) >= {"--preset", "--output-dir", "--config", "--resume", "--set"} | LAUNCH_FLAGS


def test_invoke_reads_flags_repeatables_and_short_names_as_before():
    arguments = {argument.name: argument for argument in finetune_task.get_arguments()}
    assert arguments["resume"].kind is bool and arguments["set_"].kind is list
    assert arguments["max_steps"].kind is str and arguments["preset"].names == ("preset", "p")
    assert not finetune_task.positional  # every option is a --flag


def test_the_task_passes_on_what_the_module_reads_back():
    given = {
        "preset": "smoke",
        "output_dir": "runs/x y",
        "config": "run.yaml",
        "data": "a.jsonl",
        "base_model": "tiny",
        "max_steps": "5",
        "resume": True,
        "set_": ["lr=1e-3", "seed=3"],
    }
    arguments = module_arguments({**given, "num_processes": "2", "accelerate_config": "ddp.yaml"})
    assert "--num-processes" not in arguments and "--accelerate-config" not in arguments
    assert parsed(arguments) == given
    blank = {option.name: option.default for option in TRAINING_OPTIONS}
    assert module_arguments(blank) == [] and parsed([]) == {}


def test_a_misspelt_option_in_a_direct_call_is_a_type_error():
    with pytest.raises(TypeError, match="max_step"):
        finetune_task(Context(), max_step="5")


def test_both_commands_report_an_interrupt_the_same_way(monkeypatch, tmp_path, capsys):
    def interrupted(config, log=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "finetune", interrupted)
    result = main(["--preset", "smoke", "--output-dir", str(tmp_path)])
    assert (result.exit_code, result.stdout) == (130, "")
    assert result.stderr.endswith(f" error: {INTERRUPTED}\n") and len(result.stderr.splitlines()) == 1
    with pytest.raises(Exit) as caught:
        finetune_task(Context(), preset="smoke", output_dir=str(tmp_path))
    assert (caught.value.code, caught.value.message) == (130, INTERRUPTED)


def test_both_commands_print_the_run_folder_once(monkeypatch, tmp_path, capsys):
    seen = []

    def trained(config, log=None):
        seen.append((config.max_steps, config.resume, config.learning_rate))
        return Path(config.output_dir)

    monkeypatch.setattr(trainer, "finetune", trained)
    result = main(["--preset", "smoke", "--output-dir", str(tmp_path), "--max-steps", "1e1", "--resume"])
    assert (result.exit_code, result.stdout) == (0, f"{tmp_path}\n")
    finetune_task(Context(), preset="smoke", output_dir=str(tmp_path), max_steps="10", resume=True)
    assert seen == [(10, True, 5e-3)] * 2
    assert capsys.readouterr().out == f"{tmp_path}\n"


def test_bad_settings_fail_before_torch_is_imported():
    code = (
        "import sys; from dialogsum_batch.cli import main\n"
        "try: main(['finetune', '--preset', 'smoke', '--max-steps', '2.5'])\n"
        "except SystemExit as stop: print(stop.code, 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, check=True
    )
    assert result.stdout.split() == ["1", "False"]
    assert result.stderr.endswith(" error: max_steps: expected a whole number, got '2.5'\n")
