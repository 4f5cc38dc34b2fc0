"""Ray Data: the engine inside ``Dataset.map_batches``, and the command's whole JSONL job on a Ray cluster.

Ray moves the data and schedules, sizes and restarts the actors; each actor loads the model once (the
``Summarizer`` of the Python API) and, inside every batch Ray hands it, the engine sorts the dialogues by
length, cuts token-budget sub-batches and restores their order. Ray has no length bucketing of its own.

    import ray
    from dialogsum_batch.ray import SummarizeBatch

    ds = ray.data.read_json("chats/")
    ds = ds.map_batches(
        SummarizeBatch,
        fn_constructor_kwargs={"model": "runs/pegasus-samsum", "num_beams": 4},
        compute=ray.data.ActorPoolStrategy(size=2),  # or concurrency=2 before Ray 2.51
        batch_size=256,
        num_gpus=1,  # one GPU per actor; leave out on CPUs
    )
    ds.write_parquet("summaries/")

``run_ray_job`` (``dialogsum-batch ray``, ``python -m dialogsum_batch.ray``) is the command's job on a
cluster: JSONL files in, one JSONL file out in input order, resumable. Ray is an optional extra:
``pip install dialogsum-batch[ray]``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from . import allocator
from .backends.common import usable_cores
from .backends.resolve import check_not_missing
from .config import DEFAULT_MODEL, RaySettings, RunSettings
from .errors import ConfigError, DataError, DialogsumError, InputError, MissingFieldError, first_line
from .inference.engine import EngineCounts
from .inference.job import (
    Ending,
    JobFiles,
    StopFlag,
    claim,
    exit_code,
    finish_job,
    interrupted,
    job_inputs,
    metrics_kept,
    open_writer,
    progress_bar,
    select,
)
from .inference.outputs import ResultWriter, Stats, error_record, summary_row
from .inference.records import BadRecord, Item, Record, read_files
from .inference.summarizer import Summarizer
from .logs import Log

INSTALL_HINT = "pip install dialogsum-batch[ray]"
ROW_COLUMNS = ("id", "summary", "reference", "rouge", "truncated", "chunks")  # the command's row fields
COLUMN_DEFAULTS = {"truncated": False}  # the command leaves these out when they do not apply
PID_DIR_ENV = "DIALOGSUM_RAY_PID_DIR"  # each model actor writes a file named by its pid here (supervisors, tests)
ROW_BYTES = 1024  # a chat row's size in a Ray block, roughly: sizes blocks to about one batch each
READ_CPUS = 1  # logical CPUs kept free of actors for the read tasks: without them reads starve


def import_ray() -> Any:
    """``ray`` with Ray Data, or a ConfigError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the ray extra installs ray[data]; bare ray lacks it)
    except ImportError as exc:
        raise ConfigError(f"Ray Data is not installed ({exc.name or exc}): {INSTALL_HINT}") from exc
    return ray


# ---------------------------------------------------------------------------- SummarizeBatch


class SummarizeBatch:
    """A callable class for ``Dataset.map_batches``: the model loaded once per actor, our batching inside.

    Takes the command's options as keyword arguments (``model``, ``backend``, ``num_beams``,
    ``max_new_tokens``, ``text_field``, ``id_field``, ``reference_field``, ``keep_fields``, ``long``...),
    as ``Summarizer`` does. Each output row has the command's columns: ``id``, ``summary``, ``reference``
    and ``rouge`` (null without a reference), ``truncated``, ``chunks`` (null unless ``long="chunk"`` cut
    the dialogue), then the kept fields. Give every row an id: one without gets its place in its batch.

    ``on_error``: ``row`` (default) turns a bad record into a row whose ``error`` column says why (null
    on good rows); ``skip`` leaves it out. Neither ends the job: ``fail`` is refused, as one bad record
    would end a whole cluster's job. Inference threads default to the CPUs Ray gave the actor.
    """

    def __init__(self, model: str = DEFAULT_MODEL, backend: str = "auto", *, on_error: str = "row", **options: Any):
        import_ray()
        if on_error not in ("row", "skip"):
            raise ConfigError(
                f"on_error must be 'row' (bad records become rows with 'error' set) or 'skip', got {on_error!r}: "
                "in Ray one bad record must not end the job"
            )
        options.setdefault("threads", actor_threads())
        self.on_error = on_error
        self.summarizer = Summarizer(model, backend, on_error="row", log=stderr_line, **options)
        self.id_field = self.summarizer.settings.fields.id
        self.keep_fields = self.summarizer.settings.keep_fields
        note_pid()

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        """One Ray batch (dict of numpy arrays, pandas or pyarrow) in, the command's columns out, in order."""
        rows = batch_rows(batch)
        results = [self._result(row, out) for row, out in zip(rows, self.summarizer.summarize(rows), strict=True)]
        kept = [row for row in results if row is not None]
        return {name: [row.get(name, COLUMN_DEFAULTS.get(name)) for row in kept] for name in self._columns(kept)}

    def _result(self, row: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any] | None:
        if "error" not in out:
            return out
        record_id = input_id(row, self.id_field)
        if self.on_error == "skip":
            stderr_line(f"bad record {record_id or '(no id)'} left out: {out['reason']}")
            return None
        return {"id": record_id, "error": out["reason"]}

    def _columns(self, rows: list[dict[str, Any]]) -> list[str]:
        """The command's fields, ``error`` under ``row``, and the kept fields (``*``: every other one seen)."""
        names = list(ROW_COLUMNS) + (["error"] if self.on_error == "row" else [])
        if "*" in self.keep_fields:
            return names + list(dict.fromkeys(k for row in rows for k in row if k not in names))
        return names + [k for k in self.keep_fields if k not in names]


def batch_rows(batch: Any) -> list[dict[str, Any]]:
    """A Ray batch (pyarrow Table, pandas DataFrame, dict of numpy arrays) as rows of plain Python values."""
    if hasattr(batch, "to_pylist"):  # pyarrow
        return batch.to_pylist()
    if hasattr(batch, "columns") and hasattr(batch, "to_numpy"):  # pandas
        batch = {name: batch[name].to_numpy() for name in batch.columns}
    names = list(batch)
    columns = [plain(batch[name]) for name in names]
    size = len(columns[0]) if columns else 0
    return [{name: column[i] for name, column in zip(names, columns)} for i in range(size)]


def plain(value: Any) -> Any:
    """numpy arrays and scalars (also inside lists and dicts) as Python lists and scalars; NaN, which pandas
    puts where a value is missing, as None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def input_id(row: Mapping[str, Any], id_field: str) -> str | None:
    value = row.get(id_field)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def actor_threads() -> int:
    """The CPUs Ray gave this actor, rounded up, as inference threads; 0 (automatic) outside an actor."""
    with contextlib.suppress(Exception):  # not in a Ray worker, or a Ray without the call
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0.0)
            return max(1, math.ceil(cpus)) if cpus else 0
    return 0


def actor_id() -> str:
    """This Ray actor's id (unique in the cluster, kept across restarts), else this host and pid."""
    with contextlib.suppress(Exception):  # not in a Ray actor, or a Ray without the call
        import ray

        if ray.is_initialized() and (actor := ray.get_runtime_context().get_actor_id()):
            return str(actor)
    return f"{platform.node()}:{os.getpid()}"


def note_pid() -> None:
    """Write this actor's pid where ``DIALOGSUM_RAY_PID_DIR`` says, for a supervisor (or a test) to find."""
    folder = os.environ.get(PID_DIR_ENV)
    if folder:
        with contextlib.suppress(OSError):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / str(os.getpid())).touch()


def stderr_line(line: str) -> None:
    """An actor's log line (Ray forwards an actor's stderr to the driver's)."""
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- the job's stages


def read_file(
    task: dict[str, Any], input_format: str, settings: RunSettings, max_line_bytes: int, done: Mapping[str, int]
) -> Iterator[dict[str, Any]]:
    """A Ray read task: one input (a file, or a folder such as a Slack export) through the command's readers
    (every format, FILE:LINE ids, .gz, bad lines), less the records already written; each as a job row (the
    record as JSON, or the bad record's error)."""
    items = read_files([task["path"]], input_format, settings.fields, max_line_bytes, settings.chats)
    for item in select(items, Stats(), done):
        yield job_row(item)  # type: ignore[arg-type]  (read_files yields no FLUSH)


def job_row(item: Item) -> dict[str, str]:
    """An item as a job row: a record whole (its id, dialogue, references, where it came from, the fields
    kept and written with it) or a bad record's error, as JSON, which Ray's blocks carry as plain text."""
    if isinstance(item, BadRecord):
        return {"item": json.dumps({"bad": bad_fields(item.error)}, ensure_ascii=False)}
    return {"item": json.dumps({"record": asdict(item)}, ensure_ascii=False)}


def job_item(text: str) -> Item:
    """A job row back as the item the engine takes."""
    data = json.loads(text)
    if "bad" in data:
        return BadRecord(0, input_error(data["bad"]))
    record = data["record"]
    return Record(**{**record, "references": tuple(record["references"])})


def bad_fields(error: InputError) -> dict[str, Any]:
    """A bad record's error as JSON fields: the errors file's, and for a record without the field an option
    names, that field, option and the fields it had, so that the driver ends the job as the local command
    does when no record at all has the field."""
    fields = error_record(error)
    if isinstance(error, MissingFieldError):
        fields["missing"] = {"field": error.field, "option": error.option, "found": list(error.found)}
    return fields


def input_error(fields: dict[str, Any]) -> InputError:
    """``bad_fields`` back as the error it was."""
    where, raw, missing = (fields["source"], fields["line"]), fields["raw"], fields.get("missing")
    if missing:
        return MissingFieldError(*where, missing["field"], missing["option"], tuple(missing["found"]), raw)
    return InputError(*where, fields["reason"], raw)


class JobBatch:
    """The job's model actor: job rows in, through the engine the command runs, its output rows or error
    records out (JSON, in the rows' order)."""

    def __init__(self, settings: RunSettings):
        allocator.keep_freed_memory()  # the actor's process is the job's own, as the command's is
        threads = settings.model.threads or actor_threads()
        settings = replace(settings, on_error="row", model=replace(settings.model, threads=threads))
        self.summarizer = Summarizer.from_settings(settings, log=stderr_line)
        self.keep_fields = settings.keep_fields
        self.actor = actor_id()
        note_pid()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """Job rows in; ``row`` (an output row) or ``bad`` (an error record) for each, its generated ``tokens``,
        and on the first row ``engine``: this actor's engine counts for the batch (null on the others)."""
        items = [job_item(text) for text in plain(batch["item"])]
        out: dict[str, list[Any]] = {"row": [], "bad": [], "tokens": []}
        engine = self.summarizer.engine()
        for outcome in engine.run(items):
            if outcome.error is None:
                row = summary_row(outcome.item, outcome, self.keep_fields)  # type: ignore[arg-type]
                out["row"].append(json.dumps(row, ensure_ascii=False))
                out["bad"].append(None)
                out["tokens"].append(outcome.tokens)
            else:  # unreadable, or out of memory even alone
                out["row"].append(None)
                out["bad"].append(json.dumps(bad_fields(outcome.error), ensure_ascii=False))
                out["tokens"].append(0)
        out["engine"] = [None] * len(out["row"])
        if out["engine"]:
            out["engine"][0] = json.dumps({"actor": self.actor, **asdict(engine.counts)})
        return out


# ---------------------------------------------------------------------------- the job


def run_ray_job(
    files: JobFiles, settings: RunSettings, cluster: RaySettings, log: Log, progress: bool = False
) -> tuple[int, Stats]:
    """The command's job on Ray: read by Ray tasks, summarized by model actors, written here in input order.

    Output rows are appended and flushed as they arrive, so a crash or Ctrl-C leaves whole lines, and a rerun
    with ``files.resume`` skips the ids already written. Returns the exit code and counts, as ``run_job``;
    ``--metrics-out`` is written however the job ends, as the local command writes it.
    """
    with metrics_kept(files, settings, log) as ending:
        code = _ray_job(files, settings, cluster, log, progress, ending)
    return code, ending.stats


def _ray_job(
    files: JobFiles, settings: RunSettings, cluster: RaySettings, log: Log, progress: bool, ending: Ending
) -> int:
    ray = import_ray()
    stop = StopFlag()
    with contextlib.ExitStack() as stack:
        resumed = claim(files, stack, log, ending)  # before Ray starts: a foreign output fails in a second
        inputs = [path for path in job_inputs(files, log) if path != "-"]
        if not cluster_address(cluster):  # every actor runs here: a missing model folder fails now, in one line
            check_not_missing(settings.model.name)
        stack.enter_context(connected(ray, cluster, log))
        workers = ending.processes = worker_count(ray, cluster)
        actors = plural(workers, "model actor")
        log.info(f"ray: {plural(len(inputs), 'input file')}, {actors} of {describe_actor(cluster)}")
        bar = stack.enter_context(progress_bar(progress))  # dialogues: Ray reads the files itself
        bar.started()
        writer = open_writer(files, settings, resumed, log, bar, stack, ending)
        writer.stats.resumed = sum(resumed.done.values())
        dataset = job_dataset(ray, inputs, files, settings, cluster, workers, dict(resumed.done))
        stack.enter_context(stop.installed())
        code = write_rows(dataset, writer, stop, log, files.output)
    finish_job(writer.stats, log, ending, code)
    return code


@contextlib.contextmanager
def connected(ray: Any, cluster: RaySettings, log: Log) -> Iterator[None]:
    """Connected to the cluster at ``address`` / RAY_ADDRESS, or to a local Ray started (and stopped) here,
    sized so that the actors leave CPUs to the read tasks."""
    address = cluster_address(cluster)
    if ray.is_initialized():  # inside someone else's Ray program: use theirs, leave it running
        yield
        return
    if address:
        ray.init(address=address, logging_level="WARNING", log_to_driver=True)
        log.info(f"ray: connected to {address}")
    else:
        workers = cluster.workers or local_workers(cluster)
        cpus = math.ceil(workers * cluster.cpus_per_worker) + READ_CPUS
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
        log.info(f"ray: started a local Ray with {cpus} logical CPUs")
    try:
        yield
    finally:
        ray.shutdown()


def cluster_address(cluster: RaySettings) -> str | None:
    return cluster.address or os.environ.get("RAY_ADDRESS") or None


def local_workers(cluster: RaySettings) -> int:
    """CPU actors a local Ray can hold: every usable core but one (the reads'). Ray finds the GPUs itself."""
    return max(1, int((usable_cores() - READ_CPUS) // cluster.cpus_per_worker))


def worker_count(ray: Any, cluster: RaySettings) -> int:
    """``workers`` when set, else as many actors as the cluster's CPUs (GPUs) hold, one CPU left for reading."""
    if cluster.workers:
        return cluster.workers
    resources = ray.cluster_resources()
    counts = [int((resources.get("CPU", 1) - READ_CPUS) // cluster.cpus_per_worker)]
    if cluster.gpus_per_worker:
        counts.append(int(resources.get("GPU", 0) // cluster.gpus_per_worker))
    return max(1, min(counts))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_actor(cluster: RaySettings) -> str:
    gpus = f" and {cluster.gpus_per_worker:g} GPU" if cluster.gpus_per_worker else ""
    return f"{cluster.cpus_per_worker:g} CPU{gpus}, batches of {cluster.batch_size}"


def job_dataset(
    ray: Any,
    inputs: list[str],
    files: JobFiles,
    settings: RunSettings,
    cluster: RaySettings,
    workers: int,
    done: dict[str, int],
) -> Any:
    """files -> read tasks (one per file, on this node: the paths are this machine's) -> model actors."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # Ray Data does not keep input order otherwise
    context.enable_progress_bars = False  # ours counts the rows written
    # Blocks of about a batch: a file is read as one task, and its rows must reach every actor (and the
    # output, in order) a batch at a time, not as one block per file.
    context.target_max_block_size = cluster.batch_size * ROW_BYTES
    tasks = ray.data.from_items([{"path": path} for path in inputs], override_num_blocks=max(1, len(inputs)))
    here = {"ray.io/node-id": ray.get_runtime_context().get_node_id()}
    records = tasks.flat_map(
        read_file,
        fn_kwargs={
            "input_format": files.input_format,
            "settings": settings,
            "max_line_bytes": files.max_line_bytes,
            "done": done,
        },
        label_selector=here,
    )
    with warnings.catch_warnings():  # explicit restarts (Ray 2.60's defaults too) are "deprecated" remote args
        warnings.simplefilter("ignore")
        return records.map_batches(
            JobBatch,
            fn_constructor_kwargs={"settings": settings},
            batch_size=cluster.batch_size,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cluster.cpus_per_worker,
            num_gpus=cluster.gpus_per_worker or None,
            max_restarts=-1,  # a killed actor is started again ...
            max_task_retries=-1,  # ... and its batch handed to an actor again; its rows come back once
        )


def write_rows(dataset: Any, writer: ResultWriter, stop: StopFlag, log: Log, output: str = "-") -> int:
    """Append each row as it arrives (in input order); a bad record goes the way ``on_error`` says. ``output``:
    where the rows go (an interruption suggests --resume only for a file)."""
    actors: dict[str, EngineCounts] = {}  # each actor's engine counts, summed over its batches
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            names = ("row", "bad", "tokens", "engine")
            columns = (plain(batch[name]) for name in names)  # a column of nulls comes as NaN
            for row, bad, tokens, engine in zip(*columns):
                if stop():  # rows Ray finished but not yet written are summarized again on --resume
                    return interrupted(stop.signal, log, output)
                if engine is not None:
                    counts = json.loads(engine)
                    actors.setdefault(counts.pop("actor"), EngineCounts()).add(EngineCounts(**counts))
                if row is not None:
                    write_row(writer, json.loads(row), int(tokens))
                else:
                    writer.report(input_error(json.loads(bad)))
    except KeyboardInterrupt:  # Ray's driver turns SIGINT into KeyboardInterrupt itself, ahead of our handler
        return interrupted(stop.signal or signal.SIGINT, log, output)
    except DialogsumError:
        raise
    except Exception as exc:  # a Ray error: an actor that cannot load the model, a lost cluster
        if stop():
            return interrupted(stop.signal, log, output)
        raise DataError(f"ray: {last_line(exc)}") from exc
    finally:
        for counts in actors.values():  # actors work side by side: their generation time overlaps
            writer.stats.engine.add(counts, side_by_side=True)
    return exit_code(writer)


def last_line(exc: BaseException) -> str:
    """A Ray error's cause: Ray puts the actor's traceback in the message, ending with the exception raised."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else first_line(exc)


def write_row(writer: ResultWriter, row: dict[str, Any], tokens: int) -> None:
    """An actor's output row written and counted as the local command's rows are."""
    writer.written(row, bool(row.get("truncated")), tokens)
    writer.kept_seen.update(name for name in row if name in writer.keep_fields)
    writer.progress(row)  # type: ignore[arg-type]  # counted as a dialogue: the bar has no byte offsets here


if __name__ == "__main__":  # pragma: no cover
    # ``python -m dialogsum_batch.ray``: the command lives above this module (cli.ray imports it), so it is
    # looked up by name only when this file runs as a script, never when it is imported.
    import importlib

    importlib.import_module("dialogsum_batch.cli.ray").ray_command(prog_name="python -m dialogsum_batch.ray")
