"""Load dialogue-summarization corpora into one shape: a DatasetDict of id / dialogue / summary.

Sources understood by :func:`load_corpus`:

* SAMSum's original ``corpus.7z`` (train.json, val.json, test.json), a path or an http(s) URL
  (downloaded once into the cache folder);
* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
* CSV, JSON (a list of objects, or JSON Lines), JSONL and Parquet files: one path, a mapping
  ``split -> path``, or a folder whose files are named by split (``train.csv``,
  ``dialogsum.dev.jsonl``, ``test-00000-of-00001.parquet``);
* a Hugging Face Hub dataset id, checked for reachability first so an offline machine fails
  in seconds. ``Samsung/samsum`` (gone from the Hub since 2025) is redirected to a mirror.

DialogSum's layout (``fname``, ``summary1..3``) is recognised by itself; ``columns`` maps other
layouts. Split names ``val`` / ``valid`` / ``dev`` become ``validation``.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlparse

import datasets

from dialogsum_batch.errors import ConfigError, DataError, first_line

__all__ = [
    "DEFAULT_CACHE_DIR",
    "HUB_REDIRECTS",
    "SAMSUM_CORPUS_URL",
    "canonical_split",
    "load_corpus",
    "resolve_hub_id",
    "split_from_filename",
]

logger = logging.getLogger(__name__)

Log = Union[Callable[[str], Any], logging.Logger, None]
PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_CACHE_DIR = "~/.cache/dialogsum_batch"
SAMSUM_CORPUS_URL = "https://arxiv.org/src/1911.12237v2/anc/corpus.7z"

# Hub ids that no longer resolve, and where the same data lives now (keys are lower-case).
# knkarthick/samsum is the community mirror people moved to when Samsung/samsum went 404.
HUB_REDIRECTS: dict[str, str] = {
    "samsung/samsum": "knkarthick/samsum",
    "samsum": "knkarthick/samsum",
}

SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}
SPLIT_ORDER = ("train", "validation", "test")
FIELDS = ("id", "dialogue", "summary")
DISK_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
HUB_PROBE_TIMEOUT_S = 3.0
DOWNLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Table:
    """Rows read from one file (or one split of a saved dataset), before normalisation."""

    label: str  # how messages name it: "train.csv", "corpus.7z/val.json"
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class _Source:
    """Tables grouped by split; ``single`` when the split name was only a guess."""

    splits: dict[str, list[_Table]]
    single: bool = False


@dataclass(frozen=True)
class _Fields:
    """Which source column feeds each output field of one table."""

    dialogue: str
    id: str | None = None
    summary: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)  # summary1..N, or "references"


# ---------------------------------------------------------------- public helpers


def canonical_split(name: str) -> str:
    """Map split aliases (val, valid, dev, training ...) to train / validation / test."""
    return SPLIT_ALIASES.get(name.strip().lower(), name.strip())


def split_from_filename(name: str) -> str | None:
    """The split a file name announces (``dialogsum.dev.jsonl`` -> validation), or None."""
    for token in re.split(r"[^a-z]+", Path(name).stem.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def resolve_hub_id(name: str) -> str:
    """The Hub id to load for ``name``: a working mirror for known dead ids, else ``name``."""
    return HUB_REDIRECTS.get(name.strip().lower(), name)


def load_corpus(
    source: PathLike | Mapping[str, PathLike],
    *,
    splits: str | Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    cache_dir: PathLike | None = None,
    log: Log = None,
) -> datasets.DatasetDict:
    """Load a corpus as a DatasetDict with ``id``, ``dialogue``, ``summary`` (and ``references``).

    ``splits`` keeps only the named splits (aliases allowed) and raises DataError if one is
    missing. A single-split source (one file whose name names no split, or a saved single
    Dataset) is called ``train``; when ``splits`` names exactly one split, a single-split source
    takes that name instead. ``columns`` maps output fields to source columns, e.g.
    ``{"dialogue": "chat", "summary": "abstract", "id": "uid"}``. ``log`` is a callable taking
    one line, or a logging.Logger; dropped empty records are reported there, one line a split.
    """
    mapping = _check_columns(columns)
    emit = _emitter(log)
    cache = Path(os.path.expanduser(str(cache_dir or DEFAULT_CACHE_DIR)))
    source_tables = _read_source(source, cache, emit)
    chosen = _choose_splits(source_tables, _wanted_splits(splits), _describe(source))
    built = {name: _build_split(name, tables, mapping, emit) for name, tables in chosen.items()}
    return datasets.DatasetDict({name: built[name] for name in _ordered(built)})


# ---------------------------------------------------------------- dispatch


def _read_source(source: PathLike | Mapping[str, PathLike], cache: Path, emit: Callable[[str], None]) -> _Source:
    """Read any supported source into tables grouped by split."""
    if isinstance(source, Mapping):
        return _read_mapping(source, cache, emit)
    text = os.fspath(source)
    if _is_url(text):
        return _read_path(_download(text, cache, emit))
    path = Path(text).expanduser()
    if path.exists():
        return _read_path(path)
    if HUB_ID.match(text) and path.suffix.lower() not in _READERS and path.suffix.lower() != ".7z":
        return _read_hub(text, emit)
    raise DataError(f"{text}: no such file or folder")


def _read_path(path: Path) -> _Source:
    """Read a local archive, folder or data file."""
    if path.is_dir():
        return _read_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".7z":
        return _read_archive(path)
    if suffix in _READERS:
        split = split_from_filename(path.name)
        return _Source({split or "train": [_read_file(path, path.name)]}, single=True)
    raise DataError(
        f"{path.name}: unsupported corpus format '{suffix or path.name}' "
        "(expected .7z, .csv, .json, .jsonl, .parquet or a save_to_disk folder)"
    )


def _read_mapping(source: Mapping[str, PathLike], cache: Path, emit: Callable[[str], None]) -> _Source:
    """Read a ``split -> file`` mapping; each value is a local path or a URL."""
    grouped: dict[str, list[_Table]] = {}
    for split, where in source.items():
        text = os.fspath(where)
        path = _download(text, cache, emit) if _is_url(text) else Path(text).expanduser()
        if not path.is_file():
            raise DataError(f"{text}: no such file (given for split '{split}')")
        if path.suffix.lower() not in _READERS:
            raise DataError(
                f"{path.name}: unsupported format '{path.suffix}' (expected .csv, .json, .jsonl or .parquet)"
            )
        grouped.setdefault(canonical_split(split), []).append(_read_file(path, path.name))
    if not grouped:
        raise DataError("empty split -> file mapping: name at least one file")
    return _Source(grouped)


def _read_folder(path: Path) -> _Source:
    """A save_to_disk folder, or a folder of data files named by split."""
    if any((path / marker).is_file() for marker in DISK_MARKERS):
        return _read_saved(path)
    files = _data_files(path)
    if not files:
        raise DataError(f"{path}: no save_to_disk dataset and no .csv/.json/.jsonl/.parquet files in it")
    if len(files) == 1 and split_from_filename(files[0].name) is None:
        return _Source({"train": [_read_file(files[0], files[0].name)]}, single=True)
    return _Source(_group_by_split(files, path, path.name))


def _group_by_split(files: list[Path], root: Path, label: str) -> dict[str, list[_Table]]:
    """Group data files by the split their names announce; every file must announce one."""
    unnamed = [f.relative_to(root).as_posix() for f in files if split_from_filename(f.name) is None]
    if unnamed:
        raise DataError(
            f"{label}: cannot tell the split of {', '.join(unnamed)}; "
            "name files by split (train/val/test) or pass a split -> file mapping"
        )
    grouped: dict[str, list[_Table]] = {}
    for file in files:
        split = split_from_filename(file.name) or "train"  # never None here: checked above
        grouped.setdefault(split, []).append(_read_file(file, f"{label}/{file.relative_to(root).as_posix()}"))
    return grouped


def _data_files(root: Path) -> list[Path]:
    """Readable data files under ``root`` (recursively, hidden folders skipped), sorted."""
    found = []
    for file in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in file.relative_to(root).parts)
        if file.is_file() and not hidden and file.suffix.lower() in _READERS:
            found.append(file)
    return found


# ---------------------------------------------------------------- archives, downloads, disk


def _read_archive(path: Path) -> _Source:
    """Extract the data files of a 7z archive (SAMSum's corpus.7z) and read them by split."""
    import py7zr  # imported here: only archives need it

    try:
        with py7zr.SevenZipFile(path, mode="r") as archive:
            names = [n for n in archive.getnames() if not n.endswith("/")]
            wanted = [n for n in names if Path(n).suffix.lower() in _READERS]
            if not any(split_from_filename(n) for n in wanted):
                shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") or "nothing"
                raise DataError(f"{path.name}: expected train.json, val.json, test.json; the archive has {shown}")
            with tempfile.TemporaryDirectory(prefix="dialogsum-7z-") as tmp:
                archive.extract(path=tmp, targets=wanted)
                return _Source(_group_by_split(_data_files(Path(tmp)), Path(tmp), path.name))
    except (py7zr.exceptions.ArchiveError, py7zr.exceptions.PasswordRequired, EOFError) as exc:
        raise DataError(f"{path.name}: not a readable 7z archive ({first_line(exc)})") from exc


def _download(url: str, cache: Path, emit: Callable[[str], None]) -> Path:
    """Fetch ``url`` into the cache once; later calls reuse the file."""
    name = Path(urlparse(url).path).name or "download"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    emit(f"downloading {url} to {target}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"{url}: download failed ({first_line(reason)})") from exc
    partial.replace(target)
    return target


def _read_saved(path: Path) -> _Source:
    """A folder written by ``save_to_disk``: a DatasetDict, or one Dataset (a single split)."""
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot load the saved dataset ({first_line(exc)})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        grouped = {canonical_split(s): [_dataset_table(d, f"{path.name}[{s}]")] for s, d in loaded.items()}
        return _Source(grouped)
    return _Source({"train": [_dataset_table(loaded, path.name)]}, single=True)


def _dataset_table(dataset: datasets.Dataset, label: str) -> _Table:
    """Rows of a loaded Dataset as a table."""
    return _Table(label, tuple(dataset.column_names), dataset.to_list())


# ---------------------------------------------------------------- the Hub


def _read_hub(name: str, emit: Callable[[str], None]) -> _Source:
    """Load a Hub dataset id, failing within seconds when the Hub is out of reach."""
    target = resolve_hub_id(name)
    if target != name:
        emit(f"{name} is no longer on the Hugging Face Hub; loading the mirror {target} "
             f"(original: {SAMSUM_CORPUS_URL})")
    offline_reason = _hub_offline_reason()
    if offline_reason and not _hub_cached(target):
        raise DataError(
            f"{target}: not a local path, and the Hugging Face Hub is out of reach ({offline_reason}) with no cached "
            f"copy; pass a local corpus instead (corpus.7z from {SAMSUM_CORPUS_URL}, or a CSV/JSON/Parquet file)"
        )
    try:
        with _forced_offline(bool(offline_reason)):
            loaded = datasets.load_dataset(target)
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as exc:
        raise DataError(f"{target}: cannot load from the Hugging Face Hub ({first_line(exc)})") from exc
    if not isinstance(loaded, datasets.DatasetDict):
        return _Source({"train": [_dataset_table(loaded, target)]}, single=True)
    return _Source({canonical_split(s): [_dataset_table(d, f"{target}[{s}]")] for s, d in loaded.items()})


def _hub_offline_reason() -> str | None:
    """Why the Hub cannot be used now (offline env var, or no answer), or None if it answers."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{variable} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        request = urllib.request.Request(f"{endpoint}/api/datasets?limit=1", method="HEAD")
        urllib.request.urlopen(request, timeout=HUB_PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return None  # the Hub answered, even if with an error status
    except (urllib.error.URLError, OSError) as exc:
        return f"no answer from {endpoint}: {first_line(getattr(exc, 'reason', exc))}"
    return None


def _hub_cached(name: str) -> bool:
    """Whether ``datasets`` holds a prepared copy of ``name`` it can load offline."""
    from datasets.naming import camelcase_to_snakecase

    parts = name.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = os.path.join(os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE)), "___".join(parts))
    return any(os.path.isdir(p) for p in glob.glob(os.path.join(root, "*", "*", "*")))


@contextlib.contextmanager
def _forced_offline(enabled: bool) -> Iterator[None]:
    """Make datasets / huggingface_hub skip the network (they read the env var only at import)."""
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


# ---------------------------------------------------------------- file readers


def _read_file(path: Path, label: str) -> _Table:
    """Read one data file with the reader its suffix names."""
    try:
        return _READERS[path.suffix.lower()](path, label)
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


def _read_csv(path: Path, label: str) -> _Table:
    """A CSV file with a header row; quoted fields may span lines."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            rows = [dict(row) for row in reader]
        except csv.Error as exc:
            raise DataError(f"{label}:{reader.line_num}: bad CSV ({exc})") from exc
        return _Table(label, tuple(reader.fieldnames or ()), rows)


def _read_json(path: Path, label: str) -> _Table:
    """A JSON list of objects; a file not starting with '[' is read as JSON Lines."""
    text = path.read_text(encoding="utf-8-sig")
    if not text.lstrip().startswith("["):
        return _table_from_objects(label, _parse_json_lines(text, label))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{label}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from exc
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(f"{label}: record {index + 1} is a {type(record).__name__}, not a JSON object")
    return _table_from_objects(label, records)


def _read_jsonl(path: Path, label: str) -> _Table:
    """A JSON Lines file: one object a line, blank lines skipped."""
    return _table_from_objects(label, _parse_json_lines(path.read_text(encoding="utf-8-sig"), label))


def _parse_json_lines(text: str, label: str) -> list[dict[str, Any]]:
    """Parse JSON Lines, naming the line of the first bad one."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{label}:{number}: invalid JSON ({exc.msg}, column {exc.colno})") from exc
        if not isinstance(record, dict):
            raise DataError(f"{label}:{number}: a {type(record).__name__}, not a JSON object")
        records.append(record)
    return records


def _read_parquet(path: Path, label: str) -> _Table:
    """A Parquet file."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"{label}: not a readable Parquet file ({first_line(exc)})") from exc
    return _Table(label, tuple(table.column_names), table.to_pylist())


def _table_from_objects(label: str, records: list[dict[str, Any]]) -> _Table:
    """A table whose columns are every key seen, in first-seen order."""
    columns = dict.fromkeys(key for record in records for key in record)
    return _Table(label, tuple(columns), records)


_READERS: dict[str, Callable[[Path, str], _Table]] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".parquet": _read_parquet,
}


# ---------------------------------------------------------------- normalisation


def _build_split(
    split: str, tables: list[_Table], columns: Mapping[str, str], emit: Callable[[str], None]
) -> datasets.Dataset:
    """Normalise the tables of one split into a Dataset; empty records are dropped and counted."""
    kept: list[dict[str, Any]] = []
    seen = 0
    for table in tables:
        if not table.rows:
            raise DataError(f"{table.label}: no records (split '{split}' would be empty)")
        fields = _resolve_fields(table, columns)
        for row in table.rows:
            record = _normalise_row(row, fields, f"{split}-{seen}")
            seen += 1
            if record["dialogue"] and record["summary"]:
                kept.append(record)
    if seen - len(kept):
        emit(f"dropped {seen - len(kept)} empty records from {split}")
    if not kept:
        raise DataError(f"split '{split}' is empty: all {seen} records lack a dialogue or a summary")
    return _to_dataset(kept)


def _resolve_fields(table: _Table, columns: Mapping[str, str]) -> _Fields:
    """Find the source columns of a table, honouring the user's mapping, or name what is missing."""
    present = set(table.columns)

    def pick(name: str, *defaults: str) -> str | None:
        if name in columns:
            if columns[name] not in present:
                raise _missing(table, columns[name], name)
            return columns[name]
        return next((d for d in defaults if d in present), None)

    dialogue = pick("dialogue", "dialogue")
    if dialogue is None:
        raise _missing(table, "dialogue")
    summary = pick("summary", "summary")
    numbered = sorted((c for c in present if re.fullmatch(r"summary\d+", c)), key=lambda c: int(c[7:]))
    references = tuple(numbered) or (("references",) if "references" in present else ())
    if summary is None and not references:
        raise _missing(table, "summary")
    return _Fields(dialogue=dialogue, id=pick("id", "id", "fname"), summary=summary, references=references)


def _missing(table: _Table, column: str, field_name: str | None = None) -> DataError:
    """The error for a column a table lacks, listing those it has."""
    role = f" (mapped to {field_name})" if field_name and field_name != column else ""
    has = ", ".join(table.columns) or "no columns"
    return DataError(
        f"{table.label}: column '{column}'{role} is missing (has: {has}); map columns with columns={{...}}"
    )


def _normalise_row(row: Mapping[str, Any], fields: _Fields, fallback_id: str) -> dict[str, Any]:
    """One output record: cleaned text, a stable id, the first reference as summary."""
    references = [ref for ref in _reference_texts(row, fields.references) if ref]
    summary = _clean(row.get(fields.summary)) if fields.summary else (references[0] if references else "")
    if summary and summary not in references:
        references.insert(0, summary)
    record_id = _clean(row.get(fields.id)) if fields.id else ""
    return {
        "id": record_id or fallback_id,
        "dialogue": _clean(row.get(fields.dialogue)),
        "summary": summary,
        "references": references,
    }


def _reference_texts(row: Mapping[str, Any], columns: tuple[str, ...]) -> list[str]:
    """Cleaned references from summary1..N columns or a list-valued ``references`` column."""
    if columns == ("references",):
        value = row.get("references")
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_clean(item) for item in items]
    return [_clean(row.get(column)) for column in columns]


def _clean(value: Any) -> str:
    """Text with CRLF / CR line ends as ``\\n`` and outer whitespace stripped; None is ''."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _to_dataset(records: list[dict[str, Any]]) -> datasets.Dataset:
    """Build the Dataset; ``references`` only when some record has several."""
    features = {name: datasets.Value("string") for name in FIELDS}
    data: dict[str, list[Any]] = {name: [r[name] for r in records] for name in FIELDS}
    if any(len(r["references"]) > 1 for r in records):
        features["references"] = datasets.List(datasets.Value("string"))
        data["references"] = [r["references"] for r in records]
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


# ---------------------------------------------------------------- small helpers


def _choose_splits(source: _Source, wanted: tuple[str, ...] | None, label: str) -> dict[str, list[_Table]]:
    """Keep the requested splits; a single-split source takes the one requested name."""
    if wanted is None:
        return source.splits
    if source.single and len(wanted) == 1:
        return {wanted[0]: next(iter(source.splits.values()))}
    missing = [name for name in wanted if name not in source.splits]
    if missing:
        has = ", ".join(_ordered(source.splits))
        raise DataError(f"{label}: no split '{missing[0]}' (has: {has})")
    return {name: source.splits[name] for name in wanted}


def _wanted_splits(splits: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Requested split names, canonicalised and de-duplicated."""
    if splits is None:
        return None
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    if not names:
        raise ConfigError("splits: name at least one split, or pass None for all")
    return tuple(dict.fromkeys(canonical_split(name) for name in names))


def _check_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a field -> source column mapping."""
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ConfigError(f"columns: unknown field '{unknown[0]}' (expected some of: {', '.join(FIELDS)})")
    return mapping


def _emitter(log: Log) -> Callable[[str], None]:
    """Turn the ``log`` argument into a one-line sink."""
    if log is None:
        return logger.info
    if isinstance(log, logging.Logger):
        return log.info
    return log


def _ordered(names: Mapping[str, Any] | Sequence[str]) -> list[str]:
    """Split names in train / validation / test order, then the rest sorted."""
    known = [n for n in SPLIT_ORDER if n in names]
    return known + sorted(n for n in names if n not in SPLIT_ORDER)


def _describe(source: PathLike | Mapping[str, PathLike]) -> str:
    """A short name of the source for messages."""
    if isinstance(source, Mapping):
        return "split -> file mapping"
    return os.fspath(source)


def _is_url(text: str) -> bool:
    """Whether ``text`` is an http(s) URL."""
    return text.startswith(("http://", "https://"))
