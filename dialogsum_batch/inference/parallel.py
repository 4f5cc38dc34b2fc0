"""Past one process: data-parallel ``dialogsum-batch`` under ``accelerate launch`` or ``torchrun``, and the
``accelerate launch`` command line behind ``invoke finetune --num-processes``.

Bulk inference on N processes (one per GPU, or several CPU processes):

* ``accelerate.PartialState`` joins the processes (nccl on CUDA, gloo on CPU) and gives each its GPU;
  messages between processes go over a CPU (gloo) group, so they never wait on GPU streams.
* The main process (rank 0) alone holds the lock, reads the resume state, reads the input and owns every
  file. It reads a global window of ``sort_window x N`` records and deals it round-robin (position % N),
  so every rank gets a fair mix of lengths; each rank's Engine sorts and batches its share.
* Results come back to the main process per window, which writes them in input order, with the errors
  file, the progress bar and the summary. Memory stays bounded by one window per process.
* The main process decides when everyone stops (end of input, a signal, a bad record under
  ``--on-error fail``, a failure on any rank) and tells the others, so none hangs and all exit alike.

Only the main process reads the input (rather than every rank reading it and keeping its share): stdin
can be read once only, and a glob or a growing log file could look different to two readers.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from ..backends import Backend, load_backend
from .batching import Cut, windows
from ..config import ModelSettings, RunSettings
from .engine import Engine, Interrupted, Stats, select
from ..errors import DialogsumError, InputError
from ..logs import Log
from .outputs import JsonlWriter, OutputLock, closing_output, open_output
from .records import BadRecord, Item, Record
from .job import (EXIT_OK, EXIT_PARTIAL, ErrorSink, JobFiles, Resumed, StopFlag, finish_job, input_feed,
                     interrupted, lock_path, progress_bar, read_resumed)

# Messages may wait on the main process reading slow input (stdin from a producer): no early timeout.
# A peer that dies closes its connections, which ends a wait at once; the launcher then stops the rest.
MESSAGE_TIMEOUT = timedelta(hours=12)
# A Ctrl-C reaches each process from the terminal and again as the launcher's SIGTERM: one stop, not two.
FORWARDED_SIGNAL_GRACE = 5.0
# Engine counters summed over the ranks for the summary; the main process counts what it writes itself.
SUMMED_STATS = ("batches", "oom_splits", "real_tokens", "padded_tokens", "generated_tokens")


@dataclass(frozen=True)
class World:
    """This process's place among those a launcher started."""

    rank: int = 0  # 0 is the main process
    size: int = 1  # processes in all, over every machine
    local_rank: int = 0  # index on this machine: picks the GPU
    local_size: int = 1  # processes on this machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect_world(environ: Mapping[str, str] | None = None) -> World:
    """The world torchrun / ``accelerate launch`` describe in WORLD_SIZE, RANK, LOCAL_RANK; size 1 otherwise."""
    env = os.environ if environ is None else environ
    size = int(env.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    return World(int(env.get("RANK", "0")), size, int(env.get("LOCAL_RANK", "0")),
                 int(env.get("LOCAL_WORLD_SIZE", str(size))))


def rank_model(model: ModelSettings, world: World, cuda: bool, environ: Mapping[str, str] | None = None
               ) -> ModelSettings:
    """Model settings for one rank: its own GPU (``auto`` / ``cuda`` -> ``cuda:LOCAL_RANK``), or on CPU a share
    of the cores (OMP_NUM_THREADS, which the launchers set, else cores / processes on this machine)."""
    env = os.environ if environ is None else environ
    if cuda and model.device in ("auto", "cuda"):
        return replace(model, device=f"cuda:{world.local_rank}")
    if cuda or model.threads:
        return model
    threads = int(env.get("OMP_NUM_THREADS", "0") or 0) or max(1, (os.cpu_count() or 1) // world.local_size)
    return replace(model, threads=threads)


# ------------------------------------------------------------------------------ messages


@dataclass(frozen=True)
class Work:
    """Main -> rank: the rank's share of a global window."""

    items: list[Item]
    final: bool = False  # the input ended at a stop: finish this share despite the signal, nothing follows


@dataclass(frozen=True)
class Stop:
    """Main -> every rank: stop with ``code``; ``finish`` asks for the engine counters for the summary."""

    code: int
    finish: bool


@dataclass
class Outcome:
    """Rank -> main: what its Engine gave for its share, each result with its index in the share."""

    results: list[tuple[int, dict[str, Any] | InputError]] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the rank's Engine
    failure: tuple[int, str] | None = None  # exit code and message of a DialogsumError


class Link:
    """Object messages between the main process and the others, over a CPU (gloo) process group.

    On the main process ``others`` says where the other ranks are, so that a failure there can still
    reach them: ``ready`` (waiting for an order), ``busy`` (on a share), ``finishing`` (about to send their
    counters) or ``leaving`` (at the final barrier).
    """

    def __init__(self, world: World):
        import torch.distributed as dist

        self.dist = dist
        self.world = world
        self.group = dist.new_group(backend="gloo", timeout=MESSAGE_TIMEOUT)
        self.others = "ready"

    def deal(self, messages: Sequence[Any] | None) -> Any:
        """Scatter one message to each rank (the main process passes the list, the others None)."""
        box: list[Any] = [None]
        self.dist.scatter_object_list(box, list(messages) if self.world.is_main else None, src=0, group=self.group)
        order = box[0]
        self.others = "busy" if isinstance(order, Work) else "finishing" if order.finish else "leaving"
        return order

    def collect(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` at the main process, in rank order (None elsewhere)."""
        gathered: list[Any] | None = [None] * self.world.size if self.world.is_main else None
        self.dist.gather_object(value, gathered, dst=0, group=self.group)
        self.others = "ready" if self.others == "busy" else "leaving"
        return gathered

    def everyone(self, value: Any) -> list[Any]:
        """Every rank's ``value`` at every rank."""
        gathered: list[Any] = [None] * self.world.size
        self.dist.all_gather_object(gathered, value, group=self.group)
        return gathered

    def announce(self, value: Any) -> Any:
        """The main process's ``value`` at every rank; a Stop sends them all to the final barrier."""
        box = [value if self.world.is_main else None]
        self.dist.broadcast_object_list(box, src=0, group=self.group)
        self.others = "leaving" if isinstance(box[0], Stop) else self.others
        return box[0]

    def stop(self, code: int, finish: bool) -> None:
        """Main process: tell every other rank to stop."""
        self.deal([Stop(code, finish)] * self.world.size)

    def leave(self) -> None:
        """The final barrier: no rank exits before the main process has written and released everything
        (a launcher stops every process as soon as one exits with a non-zero code)."""
        self.dist.barrier(group=self.group)


class Stopped(Exception):
    """A non-main rank learns that the main process ended the job with ``code``."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


# ------------------------------------------------------------------------------ dealing and merging


def deal(window: Sequence[Item], size: int) -> list[list[Item]]:
    """Round-robin shares: rank r gets the items at positions r, r + size, r + 2 size ..."""
    return [list(window[rank::size]) for rank in range(size)]


def where(item: Item) -> tuple[str, int | None]:
    """The source and line an item came from."""
    if isinstance(item, BadRecord):
        return item.error.source, item.error.line
    return item.source, item.line


def place(items: Sequence[Item], results: Sequence[dict[str, Any] | InputError]) -> list[tuple[int, Any]]:
    """Each Engine result with the index of its item in ``items``, whatever order they came in.

    A summary belongs to the first unclaimed record with its id; a bad record (unreadable, or out of memory
    even alone) to the item at its source and line. An interrupted Engine returns only some of them.
    """
    by_id: dict[str, deque[int]] = defaultdict(deque)
    by_where: dict[tuple[str, int | None], deque[int]] = defaultdict(deque)
    for index, item in enumerate(items):
        if isinstance(item, Record):
            by_id[item.id].append(index)
        by_where[where(item)].append(index)
    placed: list[tuple[int, Any]] = []
    claimed: set[int] = set()
    for result in results:
        queue = by_where[(result.source, result.line)] if isinstance(result, InputError) else by_id[result["id"]]
        while queue and queue[0] in claimed:  # a record of a repeated id that ended as a bad record
            queue.popleft()
        if not queue:
            raise RuntimeError(f"a result matches no record of the share: {result}")
        claimed.add(queue[0])
        placed.append((queue.popleft(), result))
    return placed


def merge(outcomes: Sequence[Outcome], window_size: int) -> list[dict[str, Any] | InputError]:
    """The ranks' results back in input order; items an interrupted rank did not finish are left out."""
    slots: list[Any] = [None] * window_size
    for rank, outcome in enumerate(outcomes):
        for index, result in outcome.results:
            slots[rank + index * len(outcomes)] = result
    return [result for result in slots if result is not None]


def summed(written: Stats, counters: Sequence[Mapping[str, float]]) -> Stats:
    """The job's Stats: what the main process wrote, plus the engine counters of every rank."""
    for name in SUMMED_STATS:
        setattr(written, name, sum(part[name] for part in counters))
    written.generate_seconds = max(part["generate_seconds"] for part in counters)  # ranks generate side by side
    return written


def counters(stats: Stats) -> dict[str, float]:
    return {name: getattr(stats, name) for name in (*SUMMED_STATS, "generate_seconds")}


# ------------------------------------------------------------------------------ one rank's work


class RankEngine:
    """An Engine whose results are kept for the main process instead of written."""

    def __init__(self, backend: Backend, settings: RunSettings, stop: StopFlag, log: Log):
        self.results: list[dict[str, Any] | InputError] = []
        self.stop = stop
        self.final = False
        self.engine = Engine(backend, settings, self.results.append, self.results.append,
                             should_stop=lambda: stop() and not self.final, log=log.warning)

    def work(self, items: list[Item], final: bool = False) -> Outcome:
        """Summarize a share; a signal or a DialogsumError is reported, not raised. A ``final`` share (the
        input ended at a stop) is finished whatever the signal: its records were read and cannot be again."""
        self.results.clear()
        self.final = final
        outcome = Outcome()
        try:
            self.engine.run(items)
        except Interrupted:
            outcome.interrupted = self.stop.signal or signal.SIGINT
        except DialogsumError as exc:
            outcome.failure = (exc.exit_code, str(exc))
        outcome.results = place(items, self.results)
        return outcome


# ------------------------------------------------------------------------------ the job


def run_parallel(files: JobFiles, settings: RunSettings, log: Log, progress: bool = False,
                 backend: Backend | None = None) -> tuple[int, Stats]:
    """``run_job`` on every process of a launcher: same files, same exit code on every rank."""
    import torch
    from accelerate import PartialState

    cuda = settings.model.device != "cpu" and torch.cuda.is_available()
    state = PartialState(cpu=not cuda)  # gloo on CPU, nccl + this rank's GPU on CUDA
    world = World(state.process_index, state.num_processes, state.local_process_index,
                  detect_world().local_size)
    settings = replace(settings, model=rank_model(settings.model, world, cuda))
    link = Link(world)
    log = log if world.is_main else Log(log.fmt, quiet=True, stream=log.stream)  # the main process speaks
    orderly = True
    try:
        return _job(link, files, settings, log, progress, backend)
    except Stopped as stopped:
        return stopped.code, Stats()
    except BaseException:
        # A non-main rank that crashed, or a main process that could not reach the others: the launcher
        # stops them all. Otherwise everyone knows the job is over and meets at the barrier.
        orderly = world.is_main and link.others == "leaving"
        raise
    finally:
        if orderly:
            link.leave()
        state.destroy_process_group()


def _job(link: Link, files: JobFiles, settings: RunSettings, log: Log, progress: bool,
         backend: Backend | None) -> tuple[int, Stats]:
    """Lock and resume state from the main process, a model on every rank, then lead or follow."""
    with contextlib.ExitStack() as stack:
        done = _on_main(link, lambda: _claim(files, stack, log))  # only the main process selects records
        backend = _on_every_rank(link, lambda: backend or load_backend(settings.model, settings.decode, log=log.info))
        if not link.world.is_main:
            return _follow(link, settings, backend, log)
        log.info(f"model {settings.model.name} on {link.world.size} processes, {backend.device} here "
                 f"({backend.name})")
        return _lead(link, files, settings, backend, done, log, progress)


def _claim(files: JobFiles, stack: contextlib.ExitStack, log: Log) -> Resumed:
    """Main process: take the lock and read what earlier runs wrote (cutting a torn last line)."""
    path = lock_path(files)
    if path:
        stack.enter_context(OutputLock(path))
    return read_resumed(files, log)


def _on_main(link: Link, action: Callable[[], Any]) -> Any:
    """Run ``action`` on the main process only (None elsewhere); its DialogsumError stops everyone."""
    if not link.world.is_main:
        reply = link.announce(None)
        if isinstance(reply, Stop):
            raise Stopped(reply.code)
        return None
    try:
        value = action()
    except DialogsumError as exc:
        link.announce(Stop(exc.exit_code, finish=False))
        raise
    link.announce("go")
    return value


def _on_every_rank(link: Link, action: Callable[[], Any]) -> Any:
    """Run ``action`` everywhere; if it fails anywhere, the main process raises and the others stop."""
    try:
        value, failure = action(), None
    except DialogsumError as exc:
        value, failure = None, (exc.exit_code, str(exc))
    failures = [(rank, found) for rank, found in enumerate(link.everyone(failure)) if found]
    if failures:
        rank, (code, message) = failures[0]
        if not link.world.is_main:
            raise Stopped(code)
        link.others = "leaving"
        raise _rank_error(rank, code, message)
    return value


def _rank_error(rank: int, code: int, message: str) -> DialogsumError:
    error = DialogsumError(message if rank == 0 else f"process {rank}: {message}")
    error.exit_code = code
    return error


def _follow(link: Link, settings: RunSettings, backend: Backend, log: Log) -> tuple[int, Stats]:
    """A non-main rank: summarize each share dealt to it until told to stop."""
    stop = StopFlag(grace=FORWARDED_SIGNAL_GRACE)
    engine = RankEngine(backend, settings, stop, log)
    with stop.installed():
        while True:
            order = link.deal(None)
            if isinstance(order, Stop):
                if order.finish:
                    link.collect(counters(engine.engine.stats))
                return order.code, engine.engine.stats
            link.collect(engine.work(order.items, order.final))


def _lead(link: Link, files: JobFiles, settings: RunSettings, backend: Backend, done: Resumed, log: Log,
          progress: bool) -> tuple[int, Stats]:
    """The main process: read, deal, collect, write in order; then the summary for all ranks.

    Whatever goes wrong here (a bad record under ``fail``, an unreadable input, a signal) reaches the
    others as a Stop when they are waiting for an order; when they are busy, the launcher ends them.
    """
    try:
        return _write_all(link, files, settings, backend, done, log, progress)
    except BaseException as exc:
        if link.others == "ready":
            link.stop(130 if isinstance(exc, KeyboardInterrupt) else getattr(exc, "exit_code", 1), finish=False)
        raise


def _write_all(link: Link, files: JobFiles, settings: RunSettings, backend: Backend, resumed: Resumed, log: Log,
               progress: bool) -> tuple[int, Stats]:
    done, seen = resumed
    stop = StopFlag(grace=FORWARDED_SIGNAL_GRACE)
    written = Stats()  # records, errors, truncated, ROUGE as written; resumed and other shards as selected
    engine = RankEngine(backend, settings, stop, log)
    with contextlib.ExitStack() as stack:
        sink = ErrorSink(files.errors_out, settings.on_error, log, stack, files.resume, seen)
        writer = JsonlWriter(stack.enter_context(closing_output(open_output(files.output, files.resume))))
        bar = stack.enter_context(progress_bar(progress))
        stack.enter_context(stop.installed())
        feed = stack.enter_context(input_feed(files, settings, stop, log))
        items = select(feed, written, done, settings.shard)
        code = _rounds(link, engine, _global_windows(items, settings, link.world.size),
                       Writer(writer, sink, written, bar), stop, lambda: feed.cut, log)
        link.stop(code, finish=True)
    total = summed(written, link.collect(counters(engine.engine.stats)) or [])
    finish_job(total, files, backend, log, code, processes=link.world.size)
    return code, total


def _global_windows(items: Iterator[Item | Cut], settings: RunSettings, size: int) -> Iterator[list[Item]]:
    """sort_window x processes items at a time; under ``fail`` a bad record ends its window, and a stalled
    input (a CUT) the window read so far, as in one process."""
    fail = settings.on_error == "fail"
    return windows(items, settings.batch.sort_window * size, lambda item: fail and isinstance(item, BadRecord))


@dataclass
class Writer:
    """The main process's outputs: summaries, the errors sink, the counts and the progress bar."""

    records: JsonlWriter
    errors: ErrorSink
    stats: Stats
    progress: Callable[[int], None]

    def write(self, results: Sequence[dict[str, Any] | InputError]) -> None:
        """Write in order; under ``fail`` the first bad record raises after those before it are written."""
        try:
            for result in results:
                if isinstance(result, InputError):
                    self.stats.errors += 1
                    self.errors.report(result)
                else:
                    self._record(result)
        finally:
            self.records.flush()

    def _record(self, value: dict[str, Any]) -> None:
        self.records.write(value)
        self.stats.records += 1
        self.stats.truncated += bool(value.get("truncated"))
        if "rouge" in value:
            self.stats.scores.add(value["rouge"])
        self.progress(1)


def _rounds(link: Link, engine: RankEngine, windows_: Iterator[list[Item]], writer: Writer, stop: StopFlag,
            cut: Callable[[], bool], log: Log) -> int:
    """Deal each window, summarize the main share, collect and write; returns the exit code.

    ``cut()`` is true once a stop ended the input: the window then in hand is the last, finished everywhere.
    """
    for window in windows_:
        shares = deal(window, link.world.size)
        final = cut()
        link.deal([Work(share, final) for share in shares])
        outcomes: list[Outcome] = link.collect(engine.work(shares[0], final)) or []
        for rank, outcome in enumerate(outcomes):
            if outcome.failure:
                raise _rank_error(rank, *outcome.failure)
        writer.write(merge(outcomes, len(window)))
        caught = stop.signal or next((o.interrupted for o in outcomes if o.interrupted), None)
        if caught:
            return interrupted(caught, log)
    if cut():  # stopped while waiting for input, between windows
        return interrupted(stop.signal, log)
    return EXIT_PARTIAL if writer.stats.errors else EXIT_OK


# ------------------------------------------------------------------------------ launching fine-tuning


def launch_command(module: str, arguments: Sequence[str], num_processes: int | None = None,
                   config_file: str | None = None, cuda: bool | None = None) -> list[str]:
    """``accelerate launch [...] -m MODULE ARGS`` for ``num_processes`` processes and/or an accelerate config.

    accelerate's launcher runs from this interpreter (``python -m accelerate.commands.launch``), so an
    environment whose ``bin`` is not on PATH still launches its own packages.

    A config file decides the kind of launch (DDP, FSDP, DeepSpeed, machines, port) itself. Without one,
    several processes mean ``--multi_gpu`` (torchrun underneath: NCCL on GPUs, gloo on CPU, where
    ``accelerate launch --cpu`` would start one process only), one process on a CPU host ``--cpu``, and
    the rendezvous takes a free port, so two runs on one machine do not collide on 29500.
    """
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        command += ["--config_file", config_file]
    if num_processes is not None:
        command += ["--num_processes", str(num_processes)]
    if not config_file:
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        many = (num_processes or 1) > 1
        command += ["--multi_gpu", "--main_process_port", "0"] if many else [] if cuda else ["--cpu"]
        # Precision is the Trainer's (TrainConfig.bf16); naming the defaults keeps accelerate from warning.
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return command + ["-m", module, *arguments]


def shell_line(command: Sequence[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
