"""Tests for dialogsum_batch.corpora: every source kind, normalisation, and each malformed case."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import logging
import socket
import threading
import time
from pathlib import Path

import datasets
import py7zr
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dialogsum_batch import corpora, hub
from dialogsum_batch.corpora import load_corpus, split_from_filename
from dialogsum_batch.errors import ConfigError, DataError

SAMSUM_TRAIN = [
    {"id": "13818513", "summary": "Amanda baked cookies.", "dialogue": "Amanda: I baked cookies.\r\nJerry: Sure!\r\n"},
    {"id": "13728867", "summary": "", "dialogue": "Olivia: Who are you voting for?\r\nOlivia: Me too."},
    {"id": "13681000", "summary": "Tim will call back.", "dialogue": "Tim: Busy.\rTim: Call you later."},
]
SAMSUM_VAL = [{"id": "13817023", "summary": "A will go to the cinema.", "dialogue": "A: Cinema?\r\nB: Yes."}]
SAMSUM_TEST = [{"id": "13862856", "summary": "Hannah needs Betty's number.", "dialogue": "Hannah: Hey\r\nAmanda: Hi"}]

ROWS = [
    {"id": "a1", "dialogue": "Ann: hi\nBob: hello", "summary": "They greet."},
    {"id": "a2", "dialogue": "Cy: lunch?\nDi: sure", "summary": "They will lunch."},
]


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep HOME, Hugging Face caches and the download cache inside tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "hf" / "datasets"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "hf" / "datasets")
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def no_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything tries to reach the Hub through datasets.load_dataset."""

    def refuse(*args, **kwargs):
        raise AssertionError("load_dataset must not be called")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


def write_7z(path: Path, members: dict[str, str]) -> Path:
    """A 7z archive holding ``members`` (name -> text), written with py7zr."""
    with py7zr.SevenZipFile(path, mode="w") as archive:
        for name, text in members.items():
            archive.writestr(text.encode("utf-8"), name)
    return path


def samsum_archive(path: Path, folder: str = "") -> Path:
    """A miniature SAMSum corpus.7z: CRLF/CR dialogues and one empty summary in train."""
    return write_7z(
        path,
        {
            f"{folder}train.json": json.dumps(SAMSUM_TRAIN),
            f"{folder}val.json": json.dumps(SAMSUM_VAL),
            f"{folder}test.json": json.dumps(SAMSUM_TEST),
        },
    )


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- SAMSum corpus.7z


@pytest.mark.parametrize("folder", ["", "corpus/"])
def test_samsum_archive_loads_all_splits_normalised(tmp_path: Path, folder: str) -> None:
    lines: list[str] = []
    corpus = load_corpus(samsum_archive(tmp_path / "corpus.7z", folder), log=lines.append)

    assert list(corpus) == ["train", "validation", "test"]
    assert corpus["train"]["id"] == ["13818513", "13681000"]
    assert corpus["train"][0]["dialogue"] == "Amanda: I baked cookies.\nJerry: Sure!"
    assert corpus["train"][1]["dialogue"] == "Tim: Busy.\nTim: Call you later."
    assert all("\r" not in d for split in corpus.values() for d in split["dialogue"])
    assert corpus["validation"][0]["summary"] == "A will go to the cinema."
    assert corpus["train"].column_names == ["id", "dialogue", "summary"]
    assert lines == ["dropped 1 empty records from train"]


def test_samsum_archive_from_url_is_downloaded_once(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    samsum_archive(served / "corpus.7z")
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            hits.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/anc/../corpus.7z"
    try:
        lines: list[str] = []
        first = load_corpus(url, cache_dir=tmp_path / "cache", splits="test", log=lines.append)
        second = load_corpus(url, cache_dir=tmp_path / "cache", splits="test", log=lines.append)
    finally:
        server.shutdown()
        server.server_close()

    assert first["test"]["id"] == second["test"]["id"] == ["13862856"]
    assert len(hits) == 1
    assert len(list((tmp_path / "cache").rglob("corpus.7z"))) == 1
    assert sum(line.startswith("downloading ") for line in lines) == 1


def test_download_failure_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"download failed") as info:
        load_corpus(f"http://127.0.0.1:{closed_port()}/corpus.7z", cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_default_cache_dir_is_under_home(tmp_path: Path, isolated_caches: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    samsum_archive(served / "corpus.7z")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        load_corpus(f"http://127.0.0.1:{server.server_address[1]}/corpus.7z", log=lambda line: None)
    finally:
        server.shutdown()
        server.server_close()
    assert list((isolated_caches / ".cache" / "dialogsum_batch").rglob("corpus.7z"))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def closed_port() -> int:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- save_to_disk folders


def test_saved_dataset_dict_round_trips(tmp_path: Path) -> None:
    saved = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "dev": datasets.Dataset.from_list(ROWS[:1])}
    )
    saved.save_to_disk(str(tmp_path / "saved"))

    corpus = load_corpus(tmp_path / "saved")

    assert list(corpus) == ["train", "validation"]
    assert corpus["train"]["id"] == ["a1", "a2"]
    assert corpus["validation"][0]["summary"] == "They greet."


def test_saved_single_dataset_takes_the_requested_split_name(tmp_path: Path) -> None:
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "one"))

    assert list(load_corpus(tmp_path / "one")) == ["train"]
    assert list(load_corpus(tmp_path / "one", splits="test")) == ["test"]


def test_output_of_load_corpus_reloads_unchanged(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dialogsum.test.jsonl", dialogsum_rows(with_refs=True))
    first = load_corpus(path)
    first.save_to_disk(str(tmp_path / "again"))

    second = load_corpus(tmp_path / "again")

    assert second["test"].to_list() == first["test"].to_list()


# ---------------------------------------------------------------- plain files


def test_csv_single_file_is_train_and_keeps_multiline_dialogues(tmp_path: Path) -> None:
    rows = [dict(ROWS[0], dialogue="Ann: hi\r\nBob: hello\r\n"), ROWS[1]]
    corpus = load_corpus(write_csv(tmp_path / "chats.csv", rows))

    assert list(corpus) == ["train"]
    assert corpus["train"][0]["dialogue"] == "Ann: hi\nBob: hello"


def test_a_csv_corpus_keeps_its_own_cell_cap_whatever_the_summarize_readers_set(tmp_path: Path) -> None:
    from dialogsum_batch.inference.records import read_records

    before = csv.field_size_limit()
    small = write_csv(tmp_path / "chats.csv", ROWS)
    assert list(read_records([str(small)], max_line_bytes=100))  # the command's reader, with a 100-byte cap
    long_turn = "Ann: " + "x" * 200_000  # a cell over both that cap and csv's default (131,072)
    corpus = load_corpus(write_csv(tmp_path / "train.csv", [dict(ROWS[0], dialogue=long_turn)]))

    assert corpus["train"][0]["dialogue"] == long_turn
    assert csv.field_size_limit() == before  # neither reader leaves its cap behind


def test_single_file_named_by_split_uses_that_split(tmp_path: Path) -> None:
    assert list(load_corpus(write_csv(tmp_path / "samsum_test.csv", ROWS))) == ["test"]


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "val.json"
    path.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")

    corpus = load_corpus(path)

    assert list(corpus) == ["validation"]
    assert corpus["validation"]["summary"] == ["They greet.", "They will lunch."]


def test_json_file_holding_json_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "records.json", ROWS)
    assert load_corpus(path)["train"]["id"] == ["a1", "a2"]


def test_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chats.jsonl", ROWS)
    corpus = load_corpus(path, splits=["test"])
    assert list(corpus) == ["test"]
    assert corpus["test"].num_rows == 2


def test_parquet(tmp_path: Path) -> None:
    pq.write_table(
        pa.Table.from_pylist(ROWS + [{"id": None, "dialogue": "X: y", "summary": None}]),
        tmp_path / "train-00000-of-00001.parquet",
    )
    lines: list[str] = []

    corpus = load_corpus(tmp_path / "train-00000-of-00001.parquet", log=lines.append)

    assert corpus["train"]["id"] == ["a1", "a2"]
    assert lines == ["dropped 1 empty records from train"]


def test_mapping_split_to_path(tmp_path: Path) -> None:
    source = {
        "train": write_jsonl(tmp_path / "a.jsonl", ROWS),
        "dev": str(write_csv(tmp_path / "b.csv", ROWS[:1])),
    }
    corpus = load_corpus(source)

    assert list(corpus) == ["train", "validation"]
    assert corpus["validation"]["id"] == ["a1"]


def test_folder_of_split_files_with_shards(tmp_path: Path) -> None:
    folder = tmp_path / "hub_layout" / "data"
    folder.mkdir(parents=True)
    for index, row in enumerate(ROWS):
        pq.write_table(pa.Table.from_pylist([row]), folder / f"train-0000{index}-of-00002.parquet")
    write_csv(folder / "test-00000-of-00001.csv", ROWS[:1])

    corpus = load_corpus(tmp_path / "hub_layout")

    assert corpus["train"]["id"] == ["a1", "a2"]
    assert corpus["test"]["id"] == ["a1"]


def test_missing_ids_get_stable_ones(tmp_path: Path) -> None:
    rows = [{"dialogue": r["dialogue"], "summary": r["summary"]} for r in ROWS]
    rows.insert(1, {"dialogue": "", "summary": "nothing said"})
    path = write_jsonl(tmp_path / "dev.jsonl", rows)

    corpus = load_corpus(path, log=lambda line: None)

    assert corpus["validation"]["id"] == ["validation-0", "validation-2"]
    assert load_corpus(path, log=lambda line: None)["validation"]["id"] == corpus["validation"]["id"]


# ---------------------------------------------------------------- DialogSum layout, column mapping


def dialogsum_rows(with_refs: bool) -> list[dict]:
    rows = [
        {"fname": "test_0", "dialogue": "#Person1#: Hi.\n#Person2#: Hello.", "topic": "greeting"},
        {"fname": "test_1", "dialogue": "#Person1#: Tea?\n#Person2#: Yes.", "topic": "tea"},
    ]
    for index, row in enumerate(rows):
        if with_refs:
            row.update(summary1=f"first {index}", summary2=f"second {index}", summary3="" if index else "third 0")
        else:
            row["summary"] = f"only {index}"
    return rows


def test_dialogsum_layout_is_recognised(tmp_path: Path) -> None:
    folder = tmp_path / "DialogSum_Data"
    folder.mkdir()
    write_jsonl(folder / "dialogsum.train.jsonl", dialogsum_rows(with_refs=False))
    write_jsonl(folder / "dialogsum.dev.jsonl", dialogsum_rows(with_refs=False))
    write_jsonl(folder / "dialogsum.test.jsonl", dialogsum_rows(with_refs=True))

    corpus = load_corpus(folder)

    assert list(corpus) == ["train", "validation", "test"]
    assert corpus["train"].column_names == ["id", "dialogue", "summary"]
    test = corpus["test"]
    assert test.column_names == ["id", "dialogue", "summary", "references"]
    assert test["id"] == ["test_0", "test_1"]
    assert test["summary"] == ["first 0", "first 1"]
    assert test["references"] == [["first 0", "second 0", "third 0"], ["first 1", "second 1"]]


def test_column_mapping(tmp_path: Path) -> None:
    rows = [{"uid": r["id"], "chat": r["dialogue"], "abstract": r["summary"], "extra": 1} for r in ROWS]
    path = write_csv(tmp_path / "other.csv", rows)

    corpus = load_corpus(path, columns={"dialogue": "chat", "summary": "abstract", "id": "uid"})

    assert corpus["train"].column_names == ["id", "dialogue", "summary"]
    assert corpus["train"]["id"] == ["a1", "a2"]
    assert corpus["train"][1]["summary"] == "They will lunch."


def test_mapped_column_that_is_absent_is_named(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "other.csv", ROWS)
    expected = r"other\.csv: column 'chat' \(mapped to dialogue\) is missing \(has: id, dialogue, summary\)"
    with pytest.raises(DataError, match=expected):
        load_corpus(path, columns={"dialogue": "chat"})


def test_unknown_mapping_field_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown field 'text'"):
        load_corpus(write_csv(tmp_path / "x.csv", ROWS), columns={"text": "dialogue"})


# ---------------------------------------------------------------- splits


def test_splits_filter_and_aliases(tmp_path: Path) -> None:
    corpus = load_corpus(samsum_archive(tmp_path / "corpus.7z"), splits=("val", "test"), log=lambda line: None)
    assert list(corpus) == ["validation", "test"]


def test_requested_split_that_is_absent(tmp_path: Path) -> None:
    source = {"train": write_jsonl(tmp_path / "a.jsonl", ROWS)}
    with pytest.raises(DataError, match=r"no split 'test' \(has: train\)"):
        load_corpus(source, splits="test")


def test_split_names_from_file_names() -> None:
    assert split_from_filename("dialogsum.dev.jsonl") == "validation"
    assert split_from_filename("val.json") == "validation"
    assert split_from_filename("train-00000-of-00001.parquet") == "train"
    assert split_from_filename("contest.csv") is None


# ---------------------------------------------------------------- the Hub


def test_samsum_ids_redirect_to_a_live_mirror() -> None:
    assert hub.resolve_hub_id("Samsung/samsum") == "knkarthick/samsum"
    assert hub.resolve_hub_id("samsum") == "knkarthick/samsum"
    assert hub.resolve_hub_id("SAMSUNG/SAMSUM") == "knkarthick/samsum"
    assert hub.resolve_hub_id("knkarthick/dialogsum") == "knkarthick/dialogsum"
    assert hub.SAMSUM_CORPUS_URL.endswith("/corpus.7z")


def test_offline_hub_id_fails_fast(monkeypatch: pytest.MonkeyPatch, no_load_dataset: None) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines: list[str] = []
    started = time.monotonic()

    with pytest.raises(DataError) as info:
        load_corpus("Samsung/samsum", log=lines.append)

    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("knkarthick/samsum: ")
    assert "HF_HUB_OFFLINE is set" in message and "corpus.7z" in message
    assert len(lines) == 1 and "knkarthick/samsum" in lines[0]


def test_unreachable_hub_fails_fast(monkeypatch: pytest.MonkeyPatch, no_load_dataset: None) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()

    with pytest.raises(DataError, match=r"someone/chats: not a local path.*no answer from http://127\.0\.0\.1"):
        load_corpus("someone/chats")

    assert time.monotonic() - started < 5


def test_reachable_hub_goes_through_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpora, "hub_unreachable", lambda: None)
    calls: list[str] = []

    def fake_load_dataset(name: str) -> datasets.DatasetDict:
        calls.append(name)
        return datasets.DatasetDict({"validation": datasets.Dataset.from_list(ROWS)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)

    corpus = load_corpus("samsum", log=lambda line: None)

    assert calls == ["knkarthick/samsum"]
    assert corpus["validation"]["id"] == ["a1", "a2"]


# ---------------------------------------------------------------- malformed sources


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file or folder"):
        load_corpus(tmp_path / "nope.csv")


def test_missing_file_in_mapping(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.jsonl: no such file \(given for split 'train'\)"):
        load_corpus({"train": tmp_path / "gone.jsonl"})


def test_missing_column_names_file_and_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "chats.csv", [{"id": "1", "text": "A: hi", "summary": "hi"}])
    with pytest.raises(DataError, match=r"chats\.csv: column 'dialogue' is missing \(has: id, text, summary\)"):
        load_corpus(path)


def test_missing_summary_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chats.jsonl", [{"dialogue": "A: hi"}])
    with pytest.raises(DataError, match=r"chats\.jsonl: column 'summary' is missing \(has: dialogue\)"):
        load_corpus(path)


def test_split_with_only_empty_records(tmp_path: Path) -> None:
    rows = [{"dialogue": "  ", "summary": "x"}, {"dialogue": "A: b", "summary": ""}]
    path = write_jsonl(tmp_path / "test.jsonl", rows)
    lines: list[str] = []
    with pytest.raises(DataError, match=r"split 'test' is empty: all 2 records lack a dialogue or a summary"):
        load_corpus(path, log=lines.append)
    assert lines == ["dropped 2 empty records from test"]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl: no records \(split 'train' would be empty\)"):
        load_corpus(path)


def test_bad_json_list_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    text = '[\n  {"id": "1", "dialogue": "A: b", "summary": "c"},\n  {"id": "2", "dialogue": }\n]'
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.json:3:\d+: invalid JSON"):
        load_corpus(path)


def test_bad_jsonl_names_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"id": "2", "dialogue": "x"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl:2: invalid JSON"):
        load_corpus(path)


def test_bad_json_inside_archive_names_member(tmp_path: Path) -> None:
    archive = write_7z(tmp_path / "corpus.7z", {"corpus/train.json": "[{"})
    with pytest.raises(DataError, match=r"corpus\.7z/corpus/train\.json:1:\d+: invalid JSON"):
        load_corpus(archive)


def test_archive_without_split_files_names_its_content(tmp_path: Path) -> None:
    archive = write_7z(tmp_path / "corpus.7z", {"readme.txt": "hello", "notes/licence.md": "CC"})
    expected = r"corpus\.7z: expected train\.json, val\.json, test\.json; the archive has .*readme\.txt"
    with pytest.raises(DataError, match=expected):
        load_corpus(archive)


def test_archive_with_unnamed_data_file(tmp_path: Path) -> None:
    archive = write_7z(tmp_path / "corpus.7z", {"train.json": json.dumps(ROWS), "extra.json": json.dumps(ROWS)})
    with pytest.raises(DataError, match=r"corpus\.7z: cannot tell the split of extra\.json"):
        load_corpus(archive)


def test_file_that_is_not_a_7z_archive(tmp_path: Path) -> None:
    path = tmp_path / "corpus.7z"
    path.write_bytes(b"not an archive")
    with pytest.raises(DataError, match=r"corpus\.7z: not a readable 7z archive"):
        load_corpus(path)


def test_unsupported_format(tmp_path: Path) -> None:
    path = tmp_path / "chats.txt"
    path.write_text("A: hi\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"chats\.txt: unsupported corpus format '\.txt'"):
        load_corpus(path)


def test_folder_without_data(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no save_to_disk dataset and no \.csv"):
        load_corpus(tmp_path / "empty")


def test_log_accepts_a_logger(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="corpora-test")
    load_corpus(samsum_archive(tmp_path / "corpus.7z"), log=logging.getLogger("corpora-test"))
    assert caplog.messages == ["dropped 1 empty records from train"]
