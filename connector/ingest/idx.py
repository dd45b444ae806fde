"""IDX, IDOL's document format, and the delete list that goes with it.

A document::

    #DREREFERENCE <identifier>
    #DRETITLE <file name>
    #DREFIELD DREREFERENCE="<identifier>"
    #DREFIELD TASK="DOCS"
    ...
    #DRECONTENT
    <text, or nothing for a document sent by reference>
    #DREENDDOC

Field values are one line: backslash and double quote are escaped with a
backslash, line breaks become spaces. A content line that starts with ``#DRE``
gets a leading space, so text can never end a document early or inject a
field. A delete list is one reference per line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

_FIELD_NAME = re.compile(r"[^A-Za-z0-9_.]")
_BREAKS = re.compile(r"\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
# What a field value or a content line may need changed. Most have none of it,
# and one search is cheaper than the substitutions (Synchronize formats a
# document per file; bench/README.md).
_FIELD_SPECIAL = re.compile(r'[\\"\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]')
_CONTENT_SPECIAL = re.compile(r"#DRE|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


@dataclass
class IdxDocument:
    reference: str
    title: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    #: The text sent in #DRECONTENT; None: sent by reference (no content).
    content: str | None = None


@functools.lru_cache(maxsize=1024)
def field_name(name: str) -> str:
    """A metadata name as an IDX field name: letters, digits, '_' and '.' only."""
    return _FIELD_NAME.sub("_", name).upper() or "_"


def _one_line(text: str) -> str:
    return _BREAKS.sub(" ", text) if _BREAKS.search(text) else text


def _quote(value: str) -> str:
    if not _FIELD_SPECIAL.search(value):
        return value
    return _one_line(value).replace("\\", "\\\\").replace('"', '\\"')


def _content_lines(text: str) -> Iterator[str]:
    for line in _BREAKS.split(text):
        yield " " + line if line.startswith("#DRE") else line


def format_document(document: IdxDocument) -> str:
    lines = [f"#DREREFERENCE {_one_line(document.reference)}"]
    if document.title:
        lines.append(f"#DRETITLE {_one_line(document.title)}")
    lines.extend(
        f'#DREFIELD {field_name(name)}="{_quote(value)}"' for name, value in document.fields
    )
    lines.append("#DRECONTENT")
    if document.content:
        text = document.content.rstrip("\r\n")
        if _CONTENT_SPECIAL.search(text):
            lines.extend(_content_lines(text))
        else:
            lines.append(text)
    lines.append("#DREENDDOC")
    return "\n".join(lines) + "\n"


def format_file_document(
    *,
    identifier: str,
    task: str,
    path: str,
    name: str,
    size: int,
    modified: str,
    content_hash: str,
    text: str | None,
    metadata: dict[str, object] | None = None,
    title: str = "",
    extracted: Sequence[tuple[str, str]] = (),
    content_mode: str | None = None,
) -> str:
    """A file as Synchronize sends it: ``format_document`` of its fields, written out.

    ``title`` (the document's own, when extraction found one) replaces the
    file name as ``#DRETITLE``; ``extracted`` are the fields extraction made
    (``connector/ingest/extract.py``), written after ``CONTENTMODE``;
    ``content_mode`` overrides ``text``/``reference`` (``extracted``).

    The same text as ``format_document`` (tested), without its per-document
    objects: Synchronize formats one per changed file. The identifier, size,
    time, hash and content mode need no quoting; the task name is a checked
    section name; only the path, the name and metadata can hold anything.
    """
    title = _one_line(title or name)
    if content_mode is None:
        content_mode = "text" if text is not None else "reference"
    made = (
        "".join(f'#DREFIELD {key}="{_quote(value)}"\n' for key, value in extracted)
        if extracted
        else ""  # a text file: no generator to make (one per file of a first run)
    )
    extra = made + (
        "".join(
            f'#DREFIELD {field_name(str(key))}="{_quote(str(value))}"\n'
            for key, value in metadata.items()
        )
        if metadata
        else ""
    )
    body = ""
    if text:
        content = text.rstrip("\r\n")
        if _CONTENT_SPECIAL.search(content):
            content = "\n".join(_content_lines(content))
        body = content + "\n"
    return (
        f"#DREREFERENCE {identifier}\n"
        + (f"#DRETITLE {title}\n" if title else "")
        + f'#DREFIELD DREREFERENCE="{identifier}"\n'
        f'#DREFIELD TASK="{_quote(task)}"\n'
        f'#DREFIELD PATH="{_quote(path)}"\n'
        f'#DREFIELD NAME="{_quote(name)}"\n'
        f'#DREFIELD SIZE="{size}"\n'
        f'#DREFIELD MODIFIED="{modified}"\n'
        f'#DREFIELD SHA256="{content_hash}"\n'
        f'#DREFIELD CONTENTMODE="{content_mode}"\n'
        f"{extra}#DRECONTENT\n{body}#DREENDDOC\n"
    )


def format_delete_list(references: Iterable[str]) -> str:
    return "".join(f"{_one_line(reference)}\n" for reference in references)


_FIELD_LINE = re.compile(r'#DREFIELD ([A-Za-z0-9_.]+)="((?:[^"\\]|\\.)*)"')


def parse_idx(text: str) -> list[IdxDocument]:
    """Read back what ``format_document`` wrote (tests, tools); not a general IDX reader."""
    documents: list[IdxDocument] = []
    current: IdxDocument | None = None
    content: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("#DREREFERENCE "):
            current = IdxDocument(reference=line[len("#DREREFERENCE ") :])
            content = None
        elif current is None:
            continue
        elif line == "#DREENDDOC":
            if content is not None:
                current.content = "\n".join(
                    part[1:] if part.startswith(" #DRE") else part for part in content
                )
            documents.append(current)
            current, content = None, None
        elif content is not None:
            content.append(line)
        elif line == "#DRECONTENT":
            content = []
        elif line.startswith("#DRETITLE "):
            current.title = line[len("#DRETITLE ") :]
        elif match := _FIELD_LINE.fullmatch(line):
            value = re.sub(r"\\(.)", r"\1", match.group(2))
            current.fields.append((match.group(1), value))
    return documents
