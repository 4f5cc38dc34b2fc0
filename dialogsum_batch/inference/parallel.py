"""Past one process: data-parallel ``dialogsum-batch`` under ``accelerate launch`` or ``torchrun``.

Bulk inference on N processes (one per GPU, or several CPU processes):

* ``accelerate.PartialState`` joins the processes (nccl on CUDA, gloo on CPU) and gives each its GPU;
  messages between processes go over a CPU (gloo) group, so they never wait on GPU streams.
* The main process (rank 0) alone holds the lock, reads the resume state, reads the input and owns every
  file. It reads a global window of ``sort_window x N`` records and deals it round-robin (position % N),
  so every rank gets a fair mix of lengths; each rank's Engine sorts and batches its share.
* Outcomes come back to the main process per window (without their records, which it holds), and it writes
  them in input order through the same writer as one process (``job.open_writer``). Memory stays bounded by
  one window per process.
* The main process decides when everyone stops (end of input, a signal, a bad record under
  ``--on-error fail``, a failure on any rank) and tells the others, so none hangs and all exit alike.

Only the main process reads the input (rather than every rank reading it and keeping its share): stdin
can be read once only, and a glob or a growing log file could look different to two readers.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from ..backends import Backend, serving
from ..config import ModelSettings, RunSettings
from ..errors import DialogsumError
from ..logs import Log
from .batching import Flush, Window, windows
from .engine import EngineCounts, Interrupted, Outcome
from .job import (
    Ending,
    JobFiles,
    Resumed,
    StopFlag,
    check_inputs,
    claim,
    exit_code,
    finish_job,
    interrupted,
    metrics_kept,
    open_writer,
    progress_bar,
    selected_input,
    stdin_hint,
)
from .outputs import ResultWriter, Stats
from .records import BadRecord, Item
from .summarizer import Summarizer

# Messages may wait on the main process reading slow input (stdin from a producer): no early timeout.
# A peer that dies closes its connections, which ends a wait at once; the launcher then stops the rest.
MESSAGE_TIMEOUT = timedelta(hours=12)
# A Ctrl-C reaches each process from the terminal and again as the launcher's SIGTERM: one stop, not two.
FORWARDED_SIGNAL_GRACE = 5.0


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
    return World(
        int(env.get("RANK", "0")), size, int(env.get("LOCAL_RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", str(size)))
    )


def rank_model(
    model: ModelSettings, world: World, cuda: bool, environ: Mapping[str, str] | None = None
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
class ShareDone:
    """Rank -> main: the outcomes of a share, in share order (positions within the share, records left out)."""

    outcomes: list[Outcome] = field(default_factory=list)
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


def merge(done: Sequence[ShareDone], window: Sequence[Item]) -> list[Outcome]:
    """The ranks' outcomes back in input order, each with its record; items an interrupted rank did not
    finish are left out."""
    size = len(done)
    slots: list[Outcome | None] = [None] * len(window)
    for rank, share in enumerate(done):
        for outcome in share.outcomes:
            at = rank + outcome.position * size
            slots[at] = replace(outcome, position=at, item=window[at])
    return [outcome for outcome in slots if outcome is not None]


# ------------------------------------------------------------------------------ one rank's work


def summarize_share(
    summarizer: Summarizer,
    items: list[Item],
    stop: StopFlag,
    log: Log,
    counts: EngineCounts,
    final: bool = False,
) -> ShareDone:
    """Summarize a share; a signal or a DialogsumError is reported, not raised. A ``final`` share (the input
    ended at a stop) is finished whatever the signal: its records were read and cannot be again."""
    engine = summarizer.engine(should_stop=lambda: stop() and not final, log=log.warning)
    done = ShareDone()
    try:
        for outcome in engine.run(items):
            done.outcomes.append(replace(outcome, item=None))  # the main process holds the records
    except Interrupted:
        done.interrupted = stop.signal or signal.SIGINT
    except DialogsumError as exc:
        done.failure = (exc.exit_code, str(exc))
    finally:
        counts.add(engine.counts)
    return done


# ------------------------------------------------------------------------------ the job


def run_parallel(
    files: JobFiles, settings: RunSettings, log: Log, progress: bool = False, backend: Backend | None = None
) -> tuple[int, Stats]:
    """``run_job`` on every process of a launcher: same files, same exit code on every rank."""
    import torch
    from accelerate import PartialState

    cuda = settings.model.device != "cpu" and torch.cuda.is_available()
    state = PartialState(cpu=not cuda)  # gloo on CPU, nccl + this rank's GPU on CUDA
    world = World(state.process_index, state.num_processes, state.local_process_index, detect_world().local_size)
    settings = replace(settings, model=rank_model(settings.model, world, cuda))
    link = Link(world)
    log = log if world.is_main else Log(log.fmt, quiet=True, stream=log.stream)  # the main process speaks
    orderly = True
    try:
        with metrics_kept(files if world.is_main else replace(files, metrics_out=None), settings, log) as ending:
            ending.processes = world.size
            return _job(link, files, settings, log, progress, backend, ending)
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


def _job(
    link: Link,
    files: JobFiles,
    settings: RunSettings,
    log: Log,
    progress: bool,
    backend: Backend | None,
    ending: Ending,
) -> tuple[int, Stats]:
    """Lock and resume state from the main process, a model on every rank, then lead or follow."""

    def take() -> Resumed:
        resumed = claim(files, stack, log, ending)
        check_inputs(files, settings.on_error)
        stdin_hint(files, log)
        return resumed

    with contextlib.ExitStack() as stack:
        resumed = _on_main(link, take)  # only the main process selects records
        summarizer = _on_every_rank(link, lambda: Summarizer.from_settings(settings, backend, log=log.info))
        ending.backend = summarizer.backend
        if not link.world.is_main:
            return _follow(link, summarizer, log)
        where = f"{link.world.size} processes, {summarizer.backend.device} here"
        log.info(f"model {settings.model.name} on {where} ({serving(summarizer.backend)})")
        return _lead(link, files, summarizer, resumed, log, progress, ending)


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


def _follow(link: Link, summarizer: Summarizer, log: Log) -> tuple[int, Stats]:
    """A non-main rank: summarize each share dealt to it until told to stop."""
    stop = StopFlag(grace=FORWARDED_SIGNAL_GRACE)
    stats = Stats()  # the main process counts what is written; this rank only its engine's work
    with stop.installed():
        while True:
            order = link.deal(None)
            if isinstance(order, Stop):
                if order.finish:
                    link.collect(stats.engine)
                return order.code, stats
            link.collect(summarize_share(summarizer, order.items, stop, log, stats.engine, order.final))


def _lead(
    link: Link,
    files: JobFiles,
    summarizer: Summarizer,
    resumed: Resumed,
    log: Log,
    progress: bool,
    ending: Ending,
) -> tuple[int, Stats]:
    """The main process: read, deal, collect, write in order; then the summary for all ranks.

    Whatever goes wrong here (a bad record under ``fail``, an unreadable input, a signal) reaches the
    others as a Stop when they are waiting for an order; when they are busy, the launcher ends them.
    """
    try:
        return _write_all(link, files, summarizer, resumed, log, progress, ending)
    except BaseException as exc:
        if link.others == "ready":
            link.stop(130 if isinstance(exc, KeyboardInterrupt) else getattr(exc, "exit_code", 1), finish=False)
        raise


def _write_all(
    link: Link,
    files: JobFiles,
    summarizer: Summarizer,
    resumed: Resumed,
    log: Log,
    progress: bool,
    ending: Ending,
) -> tuple[int, Stats]:
    stop = StopFlag(grace=FORWARDED_SIGNAL_GRACE)
    mine = EngineCounts()
    settings = summarizer.settings
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(progress_bar(progress, files, settings))
        bar.started()
        writer = open_writer(files, settings, resumed, log, bar, stack, ending)
        stack.enter_context(stop.installed())
        feed, items = selected_input(files, settings, resumed, writer.stats, stop, log, stack, link.world.size)

        def summarize(items: list[Item], final: bool) -> ShareDone:
            return summarize_share(summarizer, items, stop, log, mine, final)

        code = _rounds(
            link,
            summarize,
            _global_windows(items, settings, link.world.size),
            writer,
            stop,
            lambda: feed.stopped,
            lambda number: interrupted(number, log, files.output),
        )
        link.stop(code, finish=True)
    for counts in link.collect(mine) or []:
        writer.stats.engine.add(counts, side_by_side=True)
    finish_job(writer.stats, log, ending, code)
    return code, writer.stats


def _global_windows(items: Iterator[Item | Flush], settings: RunSettings, size: int) -> Iterator[Window]:
    """sort_window x processes items at a time; under ``fail`` a bad record ends its window, and a stalled
    input (a FLUSH) the window read so far, as in one process."""
    fail = settings.on_error == "fail"
    return windows(items, settings.batch.sort_window * size, lambda item: fail and isinstance(item, BadRecord))


def _rounds(
    link: Link,
    summarize: Callable[[list[Item], bool], ShareDone],
    windows_: Iterator[Window],
    writer: ResultWriter,
    stop: StopFlag,
    stopped: Callable[[], bool],
    interrupt: Callable[[int | None], int],
) -> int:
    """Deal each window, summarize the main share, collect and write; returns the exit code.

    ``stopped()`` is true once a stop ended the input: the window then in hand is the last, finished everywhere.
    """
    for window in windows_:
        shares = deal(window, link.world.size)
        final = (
            stopped() or window.live
        )  # a window a stall ended early is finished whatever the signal, as in one process
        link.deal([Work(share, final) for share in shares])
        done: list[ShareDone] = link.collect(summarize(shares[0], final)) or []
        for rank, share in enumerate(done):
            if share.failure:
                raise _rank_error(rank, *share.failure)
        writer.write(merge(done, window))
        caught = stop.signal or next((share.interrupted for share in done if share.interrupted), None)
        if caught:
            return interrupt(caught)
    if stopped():  # stopped while waiting for input, between windows
        return interrupt(stop.signal)
    return exit_code(writer)
