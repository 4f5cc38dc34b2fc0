"""Live input: seconds from a record's arrival on stdin to its summary on stdout, --max-wait on and off.

A producer writes synthetic chats to a fresh ``python -m dialogsum_batch`` process at a steady rate,
starting once the model has loaded (start-up is not latency), and closes stdin after the last one; a
consumer timestamps each summary line as it comes. With ``--max-wait 0`` (the window-filling behaviour
from before) a window of ``--sort-window`` records waits to fill or for the end of input, so here every
record waits for the producer to finish: its latency is bounded by this run's length, not by the window
(at 1 record/s a real, endless producer would wait 2,048 s for the first window).

    python bench/bench_latency.py                # tiny model: 1/s x 10, 100/s x 200, 5,000 at once
    python bench/bench_latency.py --model mid --rates 1:10,100:200 --max-waits 1,0
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import REPO, markdown_table, model_dir

NEW_TOKENS = 8  # latency is waiting, not decoding: short summaries keep 5,000 records quick


def lines(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(id, JSONL line) for ``count`` synthetic chats."""
    from dialogsum_batch.fixtures.synthetic import generate

    return [(row["id"], json.dumps(row, ensure_ascii=False) + "\n") for row in generate(count, seed=seed)]


def start(model: Path, max_wait: float, args: argparse.Namespace, metrics: Path) -> subprocess.Popen:
    """The command reading stdin, waiting once its model has loaded (its stderr says so)."""
    command = harness.summarize_command(
        ["-"],
        model,
        metrics=metrics,
        threads=args.threads,
        beams=1,
        max_new_tokens=args.max_new_tokens,
        options=["--max-wait", str(max_wait)],
    )
    process = subprocess.Popen(
        [sys.executable, *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=harness.command_env(args.work_dir),
        cwd=REPO,
    )
    for line in process.stderr:  # drained on a thread from here on, so the child never blocks on it
        if "info: model " in line:  # the job's "model NAME on DEVICE" line
            break
    else:
        raise SystemExit(f"the command ended before loading its model (exit {process.wait()})")
    threading.Thread(target=lambda: process.stderr.read(), daemon=True).start()
    return process


def run_case(
    model: Path, rate: float, count: int, max_wait: float, args: argparse.Namespace, folder: Path
) -> dict[str, Any]:
    """One process fed ``count`` records at ``rate`` per second; latency figures of every record."""
    metrics = folder / f"metrics-{rate}-{max_wait}.json"
    process = start(model, max_wait, args, metrics)
    records = lines(count)
    arrived: dict[str, float] = {}
    answered: dict[str, float] = {}
    consumer = threading.Thread(target=lambda: _consume(process, answered), daemon=True)
    consumer.start()
    began = time.monotonic()
    for number, (key, line) in enumerate(records):
        if rate > 0:  # rate 0: as fast as the pipe takes them (cat FILE | dialogsum-batch)
            time.sleep(max(0.0, began + number / rate - time.monotonic()))
        process.stdin.write(line)
        process.stdin.flush()
        arrived[key] = time.monotonic()
    process.stdin.close()
    code = process.wait(timeout=600)
    consumer.join(timeout=10)
    if code != 0 or len(answered) != count:
        raise SystemExit(f"{rate}/s, --max-wait {max_wait}: exit {code}, {len(answered)} of {count} summaries")
    waits = [answered[key] - arrived[key] for key, _ in records]
    report = json.loads(metrics.read_text(encoding="utf-8"))
    return {
        "rate": rate,
        "records": count,
        "max_wait": max_wait,
        "first_s": round(waits[0], 3),
        "median_s": round(statistics.median(waits), 3),
        "mean_s": round(statistics.fmean(waits), 3),
        "p90_s": round(sorted(waits)[int(0.9 * (count - 1))], 3),
        "max_s": round(max(waits), 3),
        "batches": report["batches"],
        "padding_efficiency": report["padding_efficiency"],
        "dialogues_per_second": report["dialogues_per_second"],
    }


def _consume(process: subprocess.Popen, answered: dict[str, float]) -> None:
    for line in process.stdout:
        answered[json.loads(line)["id"]] = time.monotonic()


def markdown(result: dict[str, Any]) -> str:
    headers = ["records/s", "records", "--max-wait s", "first s", "median s", "p90 s", "max s", "batches"]
    rows = [
        [f"{r['rate']:g}" if r["rate"] else "all at once", r["records"], f"{r['max_wait']:g}"]
        + [r["first_s"], r["median_s"], r["p90_s"], r["max_s"], r["batches"], r["padding_efficiency"]]
        + [r.get("dialogues_per_second", "")]
        for r in result["runs"]
    ]
    table = markdown_table([*headers, "padding eff.", "dialogues/s"], rows)
    return (
        f"{table}\n\nSeconds from a record's arrival on stdin to its summary line on stdout. "
        f"{result['model']} random Pegasus, greedy, max_new_tokens {result['max_new_tokens']}, "
        f"--threads {result['threads']}. "
        "Stdin is closed after the last record, so with --max-wait 0 every record waits for the end of "
        "this run, not for a full window of 2,048 (a real, endless producer waits that long: 34 min at 1/s, "
        "20 s at 100/s). With --max-wait, a producer slower than the engine has its window cut about every "
        "max-wait seconds (at 100/s some 100 records), hence more batches and a little more padding. "
        "'all at once' is steady fast input (a file piped in): the reader stays ahead, no window is cut, and "
        "batches, padding and throughput are those of --max-wait 0."
    )


def parse_rates(text: str) -> list[tuple[float, int]]:
    """``1:10,100:200`` -> [(1.0, 10), (100.0, 200)]: records per second and how many."""
    pairs = [part.split(":") for part in text.split(",") if part.strip()]
    return [(float(rate), int(count)) for rate, count in pairs]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(__doc__, __file__, model="tiny", max_new_tokens=NEW_TOKENS, name="latency-{model}")
    parser.add_argument(
        "--rates",
        type=parse_rates,
        default="1:10,100:200,0:5000",
        help="RATE:COUNT pairs: records per second (0: all at once, as a file piped in) and how many records",
    )
    parser.add_argument("--max-waits", default="1,0", help="comma list of --max-wait values to compare (%(default)s)")
    return harness.parse(parser, argv)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every rate at every --max-wait, each in a process of its own."""
    model = model_dir(args.model, args.work_dir)
    harness.fill_cache(model, args.work_dir, threads=args.threads)
    runs = []
    with tempfile.TemporaryDirectory(prefix="dialogsum-latency-") as tmp:
        for rate, count in args.rates:
            for max_wait in (float(value) for value in args.max_waits.split(",")):
                runs.append(run_case(model, rate, count, max_wait, args, Path(tmp)))
                print(f"{rate}/s x {count}, --max-wait {max_wait}: median {runs[-1]['median_s']} s", file=sys.stderr)
    result = {
        "runs": runs,
    }
    return result


main = harness.benchmark_main(parse_args, run_all, markdown)


if __name__ == "__main__":
    main()
