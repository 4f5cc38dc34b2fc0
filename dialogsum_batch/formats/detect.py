"""Which format reads an input: the one asked for, or under ``auto`` the one its content looks like (its name
decides only when the content does not). A choice the name would not have made, or one among several that fit,
is said in one log line; content no format can read is one error naming the formats tried."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from ..errors import InputError
from .base import MORE, Format, Head, Parsed, ReadContext
from .jsondoc import first_value
from .lines import STDIN, decoded_lines

HEAD_LINES = 200  # non-blank lines at most read ahead while a sniffer asks for more
HEAD_CHARS = 64 * 1024
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
ZIP_MAGIC = b"PK\x03\x04"
Item = tuple[int, "str | InputError"]


def read_head(lines: Iterator[Item], head: Head, formats: Mapping[str, Format]) -> tuple[Head, list[Item]]:
    """The first non-blank lines, as many as the sniffers need; every line read is given back in ``seen``."""
    seen: list[Item] = []
    texts: list[str] = []
    size = 0
    for item in lines:
        seen.append(item)
        text = item[1]
        if not isinstance(text, str) or not text.strip():
            continue
        texts.append(text)
        size += len(text)
        head = Head(head.path, head.magic, tuple(texts), False, head.names, head.folder)
        said = answers(head, formats)  # every sniffer asked once per line read
        if len(texts) >= HEAD_LINES or size >= HEAD_CHARS or any(why != MORE for why in said.values()):
            return head, seen  # a format has claimed it: live input is not held back for more lines
        if MORE not in said.values():
            return head, seen
    return Head(head.path, head.magic, tuple(texts), True, head.names, head.folder), seen


def answers(head: Head, formats: Mapping[str, Format]) -> dict[str, str]:
    """What each sniffer says of the head, in the registry's order: why it recognises it, or MORE (it needs
    more lines); formats that say nothing are left out."""
    said = {name: fmt.sniff(head) if fmt.sniff else None for name, fmt in formats.items()}
    return {name: why for name, why in said.items() if why}


def claims(head: Head, formats: Mapping[str, Format]) -> list[tuple[str, str]]:
    """(format, why) for each format whose sniffer recognises the head, in the registry's order."""
    return [(name, why) for name, why in answers(head, formats).items() if why != MORE]


def by_name(path: str, formats: Mapping[str, Format]) -> str | None:
    """The format a file's suffix names (``.gz`` looked through), or None."""
    name = (path[:-3] if path.endswith(".gz") else path).lower()
    return next((fmt.name for fmt in formats.values() if name.endswith(fmt.suffixes or ("\0",))), None)


def choose(fmt: str, head: Head, formats: Mapping[str, Format], context: ReadContext) -> Format | Parsed:
    """The format to read with, after saying why where the choice is not the obvious one."""
    found = claims(head, formats)
    if fmt != "auto":
        if fmt not in formats:
            return context.error(None, f"unknown format '{fmt}'; known: {', '.join(formats)}")
        if found and fmt not in dict(found):
            name, why = found[0]
            context.warn(f"{context.source}: read as {fmt} as asked, though it looks like {name} ({why})")
        return formats[fmt]
    if head.magic.startswith(UTF16_BOMS):
        return context.error(None, "UTF-16 text (it starts with a byte-order mark): convert it to UTF-8 first")
    named = by_name(context.path, formats) if context.path != STDIN else None
    if not found:
        return formats[named or "text"]
    chosen = named if named in dict(found) else found[0][0]
    others = [name for name, _ in found if name != chosen]
    obvious = chosen == named or (named is None and chosen in ("jsonl", "text"))  # what the name or habit says
    if others or not obvious:
        note = f"{context.source}: read as {chosen}: {dict(found)[chosen]}"
        if named and named != chosen:
            note += f" (its name suggests {named})"
        if others:
            note += f"; it could also be {' or '.join(others)} (--format picks one)"
        context.note(note)
    return formats[chosen]


def resolve(
    context: ReadContext,
    fmt: str,
    stream: IO[bytes] | None,
    formats: Mapping[str, Format],
    lines: Iterator[Item] | None = None,
    magic: bytes | None = None,
) -> tuple[Format | Parsed, Iterator[Item]]:
    """The format that reads an input (or the one error that stops it) and all the input's lines, none lost to
    sniffing; ``stream`` is None for a folder. ``lines`` and ``magic``: the stream's lines and first bytes when
    the caller began reading it."""
    if lines is None:
        lines = iter(()) if stream is None else decoded_lines(stream, context.source, context.limit)
    magic = first_bytes(stream) if magic is None else magic
    start = Head(context.path, magic, names=context.names, folder=stream is None)
    if magic.startswith(ZIP_MAGIC):  # an archive has no lines: its formats read the path
        return choose(fmt, start, formats, context), lines
    head, seen = read_head(lines, start, formats)
    chosen = choose(fmt, head, formats, context)
    first_value.cache_clear()  # the sniffers' parse of the first line: not kept while the input is read
    return chosen, _chain(seen, lines)


def parse_stream(
    context: ReadContext, fmt: str, stream: IO[bytes] | None, formats: Mapping[str, Format]
) -> Iterator[Parsed]:
    """Every dialogue of one input, read by the format asked for or found. Bad lines before the first text
    come out at once, ahead of the sniffing: an over-long first line that never ends stops ``--on-error fail``
    there instead of being waited past."""
    magic = first_bytes(stream)
    lines: Iterator[Item] = iter(()) if stream is None else decoded_lines(stream, context.source, context.limit)
    first: list[Item] = []
    binary = magic.startswith((ZIP_MAGIC, *UTF16_BOMS))  # an archive, UTF-16: the format choice says what it is
    for item in lines if not binary else ():
        if isinstance(item[1], InputError):
            yield Parsed(item[0], error=item[1])
            continue
        first.append(item)
        if item[1].strip(" \t\r\n"):  # any other line may be a record (U+3000 blanks are one): order kept
            break
    chosen, lines = resolve(context, fmt, stream, formats, _chain(first, lines), magic)
    if isinstance(chosen, Parsed):
        yield chosen
    elif stream is None and not chosen.reads_path:
        tried = ", ".join(name for name, f in formats.items() if f.reads_path) or "none"
        reason = f"which {fmt} cannot read" if fmt != "auto" else f"and no format reads it (formats tried: {tried})"
        yield context.error(None, f"a folder, {reason}")
    else:
        yield from chosen.read(lines, context)


def first_bytes(stream: IO[bytes] | None) -> bytes:
    """The stream's first bytes, left unread (its magic: a zip, a UTF-16 byte-order mark)."""
    peek = getattr(stream, "peek", None)
    return peek(8)[:8] if peek else b""


def is_folder(path: str) -> bool:
    return path != STDIN and Path(path).is_dir()


def _chain(head: list[Item], rest: Iterator[Item]) -> Iterator[Item]:
    yield from head
    yield from rest
