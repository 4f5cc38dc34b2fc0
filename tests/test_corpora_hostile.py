"""Hostile corpora for load_corpus: archive bombs, corrupt and encrypted archives, short and racing
downloads, JSON Lines with Unicode line separators, and random bytes. Each ends in one DataError line
naming the file, or in a corpus where every input line is accounted for.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import threading
import time
from pathlib import Path
from typing import Self

import datasets
import py7zr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialogsum_batch import corpora, hub
from dialogsum_batch.corpora import load_corpus
from dialogsum_batch.errors import ConfigError, DataError
from dialogsum_batch.inference.outputs import jsonl_line

ROWS = [{"id": str(i), "dialogue": f"A: hi {i}\r\nB: yo", "summary": f"They greet {i}."} for i in range(20)]
FILTERS = {
    "lzma2": None,
    "deflate": [{"id": py7zr.FILTER_DEFLATE}],
    "bzip2": [{"id": py7zr.FILTER_BZIP2}],
    "copy": [{"id": py7zr.FILTER_COPY}],
}
# CI: a few seconds; `invoke fuzz` (HYPOTHESIS_PROFILE=fuzz) raises the profile's budget past this floor
FUZZ = settings(
    max_examples=max(120, settings.default.max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Download cache, HOME and the caps' env vars isolated per test."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "home" / "hf")
    monkeypatch.delenv(corpora.MAX_EXTRACT_ENV, raising=False)
    monkeypatch.delenv(corpora.MAX_MEMBER_ENV, raising=False)


def write_7z(path: Path, members: dict[str, bytes], **options) -> Path:
    with py7zr.SevenZipFile(path, mode="w", **options) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return path


def splits_archive(path: Path, filters=None) -> Path:
    """A small valid corpus.7z: train / val / test JSON lists."""
    data = json.dumps(ROWS).encode()
    return write_7z(path, {"train.json": data, "val.json": data, "test.json": data}, filters=filters)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A 30 KB archive whose train.json expands to 200 MB of zeros (built from a sparse file: no RAM)."""
    folder = tmp_path_factory.mktemp("bomb")
    zeros = folder / "zeros"
    with zeros.open("wb") as handle:
        handle.truncate(200 << 20)
    with py7zr.SevenZipFile(folder / "corpus.7z", mode="w") as archive:
        archive.write(zeros, "train.json")
    zeros.unlink()
    return folder / "corpus.7z"


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------- archive caps


def test_bomb_is_refused_from_its_listing_before_extracting(bomb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []
    monkeypatch.setattr(corpora._CappedFactory, "create", lambda self, name: created.append(name))
    started = time.perf_counter()
    with pytest.raises(DataError) as info:
        load_corpus(bomb, max_member_bytes=10_000_000)
    assert one_line(info) == (
        "corpus.7z: train.json expands to 209,715,200 bytes, over the 10,000,000-byte per-member extraction cap "
        "(raise it with max_member_bytes= or DIALOGSUM_MAX_MEMBER_BYTES)"
    )
    assert created == [] and time.perf_counter() - started < 5


def test_total_cap_counts_every_member(tmp_path: Path) -> None:
    archive = write_7z(tmp_path / "corpus.7z", {f"{n}.json": bytes(1 << 20) for n in ("train", "val", "test")})
    with pytest.raises(
        DataError,
        match=r"^corpus\.7z: the archive expands to 3,145,728 bytes, over the "
        r"2,000,000-byte total extraction cap \(raise it with max_extract_bytes=",
    ):
        load_corpus(archive, max_extract_bytes=2_000_000)


def test_caps_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = splits_archive(tmp_path / "corpus.7z")
    monkeypatch.setenv("DIALOGSUM_MAX_MEMBER_BYTES", "1000")
    with pytest.raises(DataError, match=r"over the 1,000-byte per-member extraction cap"):
        load_corpus(archive)
    monkeypatch.setenv("DIALOGSUM_MAX_MEMBER_BYTES", "1000000")
    monkeypatch.setenv("DIALOGSUM_MAX_EXTRACT_BYTES", "2000")
    with pytest.raises(DataError, match=r"over the 2,000-byte total extraction cap"):
        load_corpus(archive)
    assert load_corpus(archive, max_extract_bytes=10**6, log=lambda line: None)["train"].num_rows == 20


@pytest.mark.parametrize("given, variable", [(0, None), (-5, None), ("10", None), (None, "lots"), (None, "-1")])
def test_bad_caps_are_config_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given, variable) -> None:
    if variable is not None:
        monkeypatch.setenv("DIALOGSUM_MAX_EXTRACT_BYTES", variable)
    with pytest.raises(ConfigError, match=r"(max_extract_bytes|DIALOGSUM_MAX_EXTRACT_BYTES).*bytes"):
        load_corpus(tmp_path / "whatever.7z", max_extract_bytes=given)


def test_defaults_are_far_above_samsum() -> None:
    samsum_expanded = 12_000_000  # train + val + test JSON of the real corpus.7z
    assert corpora.ExtractLimits().member_bytes >= 40 * samsum_expanded
    assert corpora.ExtractLimits().total_bytes >= 80 * samsum_expanded


@pytest.mark.parametrize(
    "caps, kind", [({"max_member_bytes": 10_000_000}, "per-member"), ({"max_extract_bytes": 10_000_000}, "total")]
)
def test_caps_hold_while_extracting_when_the_listing_lies(
    bomb: Path, monkeypatch: pytest.MonkeyPatch, caps: dict, kind: str
) -> None:
    monkeypatch.setattr(corpora, "_check_listing", lambda *args: None)  # as if the header understated sizes
    written: list[int] = []
    original = corpora._CappedWriter.write

    def spy(self, data):
        written.append(self.written + len(data))
        return original(self, data)

    monkeypatch.setattr(corpora._CappedWriter, "write", spy)
    with pytest.raises(DataError) as info:
        load_corpus(bomb, **caps)
    assert re.fullmatch(
        rf"corpus\.7z: .*expands past its listing while extracting, over the 10,000,000-byte "
        rf"{kind} extraction cap \(raise it with .*\)",
        one_line(info),
    )
    # at most one decompression step past the cap reached the disk (none for py7zr's own total check)
    assert max(written, default=0) <= 10_000_000 + corpora.EXTRACT_STEP_BYTES


def test_decompression_steps_are_bounded_and_restored() -> None:
    import py7zr.py7zr as core

    original = core.get_memory_limit
    with corpora._small_decompression_steps():
        assert core.get_memory_limit() <= corpora.EXTRACT_STEP_BYTES
    assert core.get_memory_limit is original


# ---------------------------------------------------------------- corrupt and encrypted archives


@pytest.mark.parametrize("header_encryption", [False, True])
def test_password_protected_archive_says_so(tmp_path: Path, header_encryption: bool) -> None:
    archive = write_7z(
        tmp_path / "corpus.7z",
        {"train.json": json.dumps(ROWS).encode()},
        password="secret",
        header_encryption=header_encryption,
    )
    with pytest.raises(DataError) as info:
        load_corpus(archive)
    assert one_line(info).startswith("corpus.7z: the archive is password-protected")


@pytest.mark.parametrize("data", [b"", b"7z\xbc\xaf\x27\x1c", b"7z\xbc\xaf\x27\x1c" + bytes(64)])
def test_truncated_archives_are_one_line(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "corpus.7z"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"^corpus\.7z: ") as info:
        load_corpus(path)
    one_line(info)


@functools.cache
def valid_archive(tmp: str, filters: str) -> bytes:
    return splits_archive(Path(tmp) / f"valid-{filters}.7z", FILTERS[filters]).read_bytes()


mutations = st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=6)


@pytest.mark.property
@FUZZ
@given(filters=st.sampled_from(sorted(FILTERS)), flips=mutations, cut=st.none() | st.integers(0, 10**6))
def test_mutated_archives_raise_only_data_errors(tmp_path: Path, filters: str, flips, cut) -> None:
    data = bytearray(valid_archive(str(tmp_path.parent), filters))
    for position, mask in flips:
        data[position % len(data)] ^= mask
    path = tmp_path / "corpus.7z"
    path.write_bytes(bytes(data[: cut % len(data)] if cut is not None else data))
    try:
        corpus = load_corpus(path, log=lambda line: None, max_extract_bytes=1 << 20)
    except DataError as error:
        assert str(error).startswith("corpus.7z") and "\n" not in str(error)
    else:
        assert isinstance(corpus, datasets.DatasetDict)


# ---------------------------------------------------------------- downloads


class Server:
    """A local HTTP server answering GET with ``body`` but announcing ``length`` bytes."""

    def __init__(self, body: bytes, length: int | None = None, pause: float = 0.0):
        self.body, self.length, self.pause, self.hits = body, length, pause, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Length", str(outer.length or len(outer.body)))
                self.end_headers()
                for start in range(0, len(outer.body), 4096):  # slowly, so that loads overlap
                    self.wfile.write(outer.body[start : start + 4096])
                    time.sleep(outer.pause)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/anc/corpus.7z"

    def __enter__(self) -> Self:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def cached_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def test_short_body_is_never_cached(tmp_path: Path) -> None:
    body = splits_archive(tmp_path / "served.7z").read_bytes()
    cache = tmp_path / "cache"
    with Server(body[: len(body) // 2], length=len(body)) as server:
        with pytest.raises(DataError) as info:
            load_corpus(server.url, cache_dir=cache)
        half = len(body) // 2
        assert one_line(info) == (
            f"{server.url}: download incomplete ({half:,} of {len(body):,} bytes); nothing cached, try again"
        )
        assert cached_files(cache) == []
        server.body = body  # the server recovers: the next load fetches again, whole
        assert load_corpus(server.url, cache_dir=cache, log=lambda line: None)["test"].num_rows == 20
    assert server.hits == 2 and cached_files(cache) == ["corpus.7z"]


def test_known_download_is_checked_against_its_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = splits_archive(tmp_path / "served.7z").read_bytes()
    cache = tmp_path / "cache"
    with Server(body) as server:
        monkeypatch.setitem(hub.KNOWN_DOWNLOADS, server.url, (len(body), "0" * 64))
        with pytest.raises(DataError, match=r"download does not match the known file .*; nothing cached$"):
            load_corpus(server.url, cache_dir=cache)
        assert cached_files(cache) == []
        monkeypatch.setitem(hub.KNOWN_DOWNLOADS, server.url, (len(body), hashlib.sha256(body).hexdigest()))
        load_corpus(server.url, cache_dir=cache, log=lambda line: None)
        cached = next(cache.rglob("corpus.7z"))
        cached.write_bytes(body[:100])  # a short copy cached by an older version: fetched again on use
        load_corpus(server.url, cache_dir=cache, log=lambda line: None)
    assert server.hits == 3 and cached.read_bytes() == body


def test_samsum_digest_is_the_recorded_one() -> None:
    size, digest = hub.KNOWN_DOWNLOADS[hub.SAMSUM_CORPUS_URL]
    assert size == 2_944_100 and re.fullmatch(r"[0-9a-f]{64}", digest)


def test_concurrent_loads_of_one_url_download_once(tmp_path: Path) -> None:
    body = splits_archive(tmp_path / "served.7z").read_bytes()
    cache, barrier = tmp_path / "cache", threading.Barrier(3)
    results: list[object] = []

    def load() -> None:
        barrier.wait()
        try:
            results.append(load_corpus(server.url, cache_dir=cache, splits="test", log=lambda line: None))
        except Exception as error:  # noqa: BLE001 -- reported by the assertion below
            results.append(error)

    with Server(body, pause=0.02) as server:
        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert all(isinstance(result, datasets.DatasetDict) for result in results), results
    assert [result["test"].num_rows for result in results] == [20, 20, 20]
    assert server.hits == 1
    assert cached_files(cache) == ["corpus.7z"] and next(cache.rglob("corpus.7z")).read_bytes() == body


# ---------------------------------------------------------------- JSON Lines and JSON


SEPARATORS = "\u2028\u2029\u0085"


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    rows = [
        {"id": "u1", "dialogue": f"A: one{SEPARATORS}two\nB: ok", "summary": "Sep\u2028arated\u0085."},
        {"id": "u2", "dialogue": "A: plain", "summary": "Plain."},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert "\u2028" in path.read_text(encoding="utf-8")  # raw, as older writers and other tools leave them

    corpus = load_corpus(path)

    assert corpus["train"]["id"] == ["u1", "u2"]
    assert corpus["train"][0]["dialogue"] == rows[0]["dialogue"]
    assert corpus["train"][0]["summary"] == rows[0]["summary"]


def test_reads_what_dialogsum_batch_writes(tmp_path: Path) -> None:
    rows = [
        {"id": "w1", "dialogue": f"A: x{SEPARATORS}\x1c\u3000y", "summary": "S\u2028T", "score": 0.5},
        {"id": "w2", "dialogue": "A: b", "summary": "C"},
    ]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(jsonl_line(r) for r in rows), encoding="utf-8")
    corpus = load_corpus(path)
    assert corpus["test"]["dialogue"] == [rows[0]["dialogue"], "A: b"]
    assert corpus["test"]["summary"] == ["S\u2028T", "C"]


def test_json_list_with_separators_in_an_archive(tmp_path: Path) -> None:
    rows = [{"id": "j", "dialogue": f"A: {SEPARATORS}", "summary": "S."}]
    archive = write_7z(tmp_path / "corpus.7z", {"train.json": json.dumps(rows, ensure_ascii=False).encode()})
    assert load_corpus(archive)["train"][0]["dialogue"] == "A:"  # outer whitespace stripped, as ever
    rows[0]["dialogue"] = f"A: x{SEPARATORS}y"
    archive = write_7z(tmp_path / "corpus2.7z", {"train.json": json.dumps(rows, ensure_ascii=False).encode()})
    assert load_corpus(archive)["train"][0]["dialogue"] == f"A: x{SEPARATORS}y"


def test_blank_lines_are_counted_and_exotic_blanks_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n \t\r\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    lines: list[str] = []
    assert load_corpus(path, log=lines.append)["train"].num_rows == 2
    assert lines == ["skipped 2 blank lines in train.jsonl"]
    for blank in ("\x1c", "\u3000", "\u0085", "\u2028"):
        path.write_text(json.dumps(ROWS[0]) + "\n" + blank + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=r"^train\.jsonl:2: invalid JSON"):
            load_corpus(path)


@pytest.mark.parametrize(
    "line, reason",
    [
        (b"[" * 100_000 + b"]" * 100_000, "JSON that Python cannot read"),
        (b'{"id": ' + b"9" * 5000 + b', "dialogue": "A", "summary": "B"}', "JSON that Python cannot read"),
        (b'{"id": "\\ud800", "dialogue": "A: b", "summary": "C"}', "record 2: text holds a lone surrogate"),
        (b'{"dialogue": "A: \\udfff", "summary": "C"}', "record 2: text holds a lone surrogate"),
        (b'{"id": "x", "dialogue": "A: \xff", "summary": "C"}', "not UTF-8 text"),
        (b"\x00\x00", "invalid JSON"),
    ],
)
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_valid_json_python_chokes_on_is_one_line(tmp_path: Path, line: bytes, reason: str, suffix: str) -> None:
    good = json.dumps(ROWS[0]).encode()
    path = tmp_path / f"train{suffix}"
    path.write_bytes(good + b"\n" + line + b"\n" if suffix == ".jsonl" else b"[" + good + b",\n" + line + b"]")
    with pytest.raises(DataError) as info:
        load_corpus(path)
    assert one_line(info).startswith(f"train{suffix}") and reason in str(info.value)


def test_long_line_is_refused_without_holding_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpora, "MAX_RECORD_BYTES", 1000)
    path = tmp_path / "train.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + b" " * 5000 + b"\n")
    with pytest.raises(DataError, match=r"^train\.jsonl:2: line longer than 1,000 bytes"):
        load_corpus(path)
    path = tmp_path / "train.json"
    path.write_bytes(b'[{"dialogue": "' + b"a" * 5000)  # a string that never ends
    with pytest.raises(DataError, match=r"^train\.json:1:2: a record longer than 1,000 characters"):
        load_corpus(path)
    path = tmp_path / "train.csv"
    path.write_bytes(b"dialogue,summary\n" + b"x" * 5000 + b"\n")
    with pytest.raises(DataError, match=r"^train\.csv:2: line longer than 1,000 characters"):
        load_corpus(path)


def test_json_list_is_read_item_by_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpora, "JSON_WINDOW_CHARS", 7)  # every item straddles several windows
    rows = [{**row, "n": 10**12 + i, "f": -1.5e-7} for i, row in enumerate(ROWS)]
    path = tmp_path / "train.json"
    path.write_text("\ufeff" + json.dumps(rows, indent=3, ensure_ascii=False), encoding="utf-8")
    table = corpora._read_json(path, "train.json")
    assert table.rows == rows


@functools.cache
def json_list_text() -> str:
    rows = [{"id": i, "dialogue": f"A: é{SEPARATORS}\n{i}", "summary": [1.5, None, True, "x"]} for i in range(4)]
    return json.dumps(rows, indent=1, ensure_ascii=False)


@pytest.mark.property
@FUZZ
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 10**4), st.sampled_from(list('[]{},:"\\ \n0-eE.1tnu') + ["\u2028"])), max_size=4
    ),
    cut=st.none() | st.integers(0, 10**4),
    window=st.integers(1, 40),
)
def test_json_list_reader_agrees_with_json_loads(tmp_path: Path, edits, cut, window: int) -> None:
    text = json_list_text()
    for position, char in edits:
        position %= len(text)
        text = text[:position] + char + text[position + 1 :]
    text = text[: cut % len(text)] if cut is not None else text
    if not text.lstrip(" \t\r\n").startswith("["):
        return
    path = tmp_path / "train.json"
    path.write_text(text, encoding="utf-8")
    try:
        expected: object = json.loads(text)
    except json.JSONDecodeError as error:
        expected = f"train.json:{error.lineno}:{error.colno}: invalid JSON ({error.msg})"
    corpora.JSON_WINDOW_CHARS, saved = window, corpora.JSON_WINDOW_CHARS
    try:
        with path.open("rb") as handle:
            got: object = list(corpora._JsonListReader(handle, "train.json").items())
    except DataError as error:
        got = str(error)
    finally:
        corpora.JSON_WINDOW_CHARS = saved
    assert got == expected


def jsonl_lines() -> st.SearchStrategy[bytes]:
    """Lines that are records, near-records, blanks or noise."""
    text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)
    record = st.fixed_dictionaries({"id": text, "dialogue": text, "summary": text}).map(
        lambda r: json.dumps(r, ensure_ascii=False).encode()
    )
    noise = st.binary(max_size=30)
    blank = st.sampled_from([b"", b" ", b"\t\r", b"\xef\xbb\xbf"])
    return st.one_of(record, record.map(lambda b: b[:-1]), noise, blank)


@pytest.mark.property
@FUZZ
@given(
    lines=st.lists(jsonl_lines(), min_size=1, max_size=8),
    suffix=st.sampled_from([".jsonl", ".json"]),
    final_newline=st.booleans(),
)
def test_every_jsonl_line_is_a_record_a_reported_skip_or_the_error(
    tmp_path: Path, lines, suffix: str, final_newline: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    path = tmp_path / f"train{suffix}"
    path.write_bytes(data)
    physical = data.count(b"\n") + (not data.endswith(b"\n"))  # lines as readline() sees them
    log: list[str] = []
    try:
        corpus = load_corpus(path, log=log.append)
    except DataError as error:
        assert str(error).startswith(f"train{suffix}") and "\n" not in str(error)
        return
    counted = {kind: int(n) for line in log for n, kind in re.findall(r"(?:dropped|skipped) (\d+) \w+ (\w+)", line)}
    if suffix == ".jsonl" or not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        assert corpus["train"].num_rows + counted.get("records", 0) + counted.get("lines", 0) == physical


@pytest.mark.property
@FUZZ
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_random_bytes_raise_only_data_errors(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    path.write_bytes(data)
    try:
        load_corpus(path, log=lambda line: None)
    except DataError as error:
        assert "\n" not in str(error)
