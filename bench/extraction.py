"""Extraction (issue 15): Kreuzberg against an alternative on the same generated corpus.

Run from the repository root::

    python bench/extraction.py [--documents 2000] [--seconds-cap 600]

Generates a mixed corpus (PDF, DOCX, XLSX, PPTX, HTML, EML, RTF, ODT; a few
pages or rows each) in memory, then extracts every document with

- Kreuzberg, in this process (``connector.ingest.extract.extract_here``, the
  call the extraction child makes), and
- the alternative: pypdfium2 for PDF, python-docx for DOCX, openpyxl for XLSX,
  python-pptx for PPTX (the formats it covers; the others print "-").

and prints documents/s, MB/s and CPU ms per document per format, and the
peak RSS of this process after each library. Synchronize's own ratios are
``bench/synchronize.py``'s.

Archives (``--archives``, default a tenth of ``--documents`` of each kind): a
zip with nested folders (a DOCX, a text file, an HTML page and a zip inside
it: 5 members), a tar.gz of 3 text and HTML members, and an e-mail with two
attachments, each opened as Synchronize does (``archives.open_document``:
unpacking and every member's extraction in the extraction child). Printed:
archives/s, members/s, and CPU ms per archive of this process and of the
child (read from /proc), and the child's peak RSS. There is no alternative to
compare with here: the stdlib's zipfile, tarfile and email do the unpacking
either way, in the child or in process.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "connector", "fetch"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import documents_corpus as corpus
from harness import process_cpu_seconds

from connector.ingest import archives
from connector.ingest.extract import Extractor, extract_here, extractor
from connector.ingest.kinds import ExtractSettings, detect, has_members

FORMATS: dict[str, Callable[[int], bytes]] = {
    "pdf": lambda n: corpus.pdf([f"Page {p} of document {n}. " * 20 for p in range(3)]),
    "docx": lambda n: corpus.docx(),
    "xlsx": lambda n: corpus.xlsx(),
    "pptx": lambda n: corpus.pptx(),
    "html": lambda n: corpus.HTML.replace(b"Visible text.", f"Visible text {n}.".encode() * 50),
    "eml": lambda n: corpus.EML,
    "rtf": lambda n: corpus.RTF,
    "odt": lambda n: corpus.odt(),
}


def _pdfium(data: bytes) -> str:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    try:
        return "\n\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def _docx(data: bytes) -> str:
    import docx

    document = docx.Document(io.BytesIO(data))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        lines.extend(" ".join(cell.text for cell in row.cells) for row in table.rows)
    return "\n".join(lines)


def _xlsx(data: bytes) -> str:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    lines = []
    for sheet in book.worksheets:
        lines.append(sheet.title)
        lines.extend(
            " ".join(str(v) for v in row if v is not None)
            for row in sheet.iter_rows(values_only=True)
        )
    return "\n".join(lines)


def _pptx(data: bytes) -> str:
    from pptx import Presentation

    deck = Presentation(io.BytesIO(data))
    return "\n".join(
        shape.text_frame.text
        for slide in deck.slides
        for shape in slide.shapes
        if shape.has_text_frame
    )


ARCHIVES: dict[str, Callable[[int], bytes]] = {
    "zip": lambda n: corpus.zip_of(
        {
            "folder/sub/notes.txt": f"notes of archive {n}".encode(),
            "folder/report.docx": corpus.docx(),
            "folder/page.html": corpus.HTML,
            "inner.zip": corpus.zip_of({"deep/inner.txt": f"inner {n}".encode()}),
        }
    ),
    "tar.gz": lambda n: corpus.tar_of(
        {
            "docs/a.txt": f"alpha {n}".encode(),
            "docs/b.html": corpus.HTML,
            "docs/c.txt": b"gamma",
        },
        compression="gz",
    ),
    "eml": lambda n: corpus.EML_ZIP,
}
#: Members each archive of ARCHIVES yields (the inner zip's member counts too).
MEMBERS = {"zip": 5, "tar.gz": 3, "eml": 2}


def bench_archives(count: int, settings: ExtractSettings) -> None:
    print(f"\nArchives ({count} of each), opened as Synchronize does:")
    print(f"{'kind':<8}{'archives':>9}{'members':>9}{'archives/s':>12}{'members/s':>11}"
          f"{'CPU ms/archive (this + child)':>32}")  # fmt: skip
    child = extractor()
    for kind, make in ARCHIVES.items():
        made = [make(n) for n in range(count)]
        detected = detect(made[0], "x")
        assert detected is not None and has_members(detected, settings), kind
        members = 0
        child.extract(corpus.docx(), "docx", settings)  # started, library loaded
        pid = child.pid
        assert pid is not None
        cpu, child_cpu, wall = _cpu(), process_cpu_seconds(pid), time.perf_counter()
        for n, data in enumerate(made):
            parent = archives.Parent("BENCH", f"R{n}", f"a{n}", 0, "added")
            _, failed, opened = archives.open_document(data, detected, settings, parent)
            assert failed is None and not opened.failed, (failed, opened.failed)
            members += len(opened.records)
        wall = time.perf_counter() - wall
        cpu, child_cpu = _cpu() - cpu, process_cpu_seconds(pid) - child_cpu
        assert members == MEMBERS[kind] * count, (kind, members)
        print(f"{kind:<8}{count:>9}{members:>9}{count / wall:>12.0f}{members / wall:>11.0f}"
              f"{1000 * cpu / count:>15.2f} + {1000 * child_cpu / count:.2f}")  # fmt: skip
    assert child.pid is not None
    with open(f"/proc/{child.pid}/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM"))
    print(f"Extraction child after the archives: peak RSS {peak.split(':')[1].strip()}")
    child.close()


ALTERNATIVE: dict[str, Callable[[bytes], str]] = {
    "pdf": _pdfium,
    "docx": _docx,
    "xlsx": _xlsx,
    "pptx": _pptx,
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--archives", type=int, default=None, help="of each kind")
    args = parser.parse_args()
    per_format = max(1, args.documents // len(FORMATS))
    print(f"Generating {per_format * len(FORMATS)} documents ({per_format} per format)...")
    corpus_docs = {kind: [make(n) for n in range(per_format)] for kind, make in FORMATS.items()}
    for kind, docs in corpus_docs.items():
        assert detect(docs[0], "x") == kind, kind
    settings = ExtractSettings()
    print(f"Before: peak RSS {_rss_mib():.0f} MiB")
    rows = []
    child = Extractor()
    for library in ("kreuzberg", "kreuzberg-child", "alternative"):
        total_docs = total_bytes = 0
        total_wall = total_cpu = 0.0
        for kind, docs in corpus_docs.items():
            if library == "kreuzberg":

                def run(data: bytes, kind: str = kind) -> object:
                    result = extract_here(data, kind, settings)
                    assert result.failed is None, result.failed
                    return result
            elif library == "kreuzberg-child":
                # As Synchronize runs it: in the extraction child, bytes over a pipe.
                def run(data: bytes, kind: str = kind) -> object:
                    result = child.extract(data, kind, settings)
                    assert result.failed is None, result.failed
                    return result
            elif kind in ALTERNATIVE:
                run = ALTERNATIVE[kind]
            else:
                rows.append((library, kind, None))
                continue
            size = sum(len(d) for d in docs)
            cpu, wall = _cpu(), time.perf_counter()
            for data in docs:
                run(data)
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            rows.append((library, kind, (len(docs), size, wall, cpu)))
            total_docs += len(docs)
            total_bytes += size
            total_wall += wall
            total_cpu += cpu
        rows.append((library, "all", (total_docs, total_bytes, total_wall, total_cpu)))
        print(f"After {library}: peak RSS {_rss_mib():.0f} MiB")
    if child.pid is not None:
        with open(f"/proc/{child.pid}/status") as status:
            peak = next(line for line in status if line.startswith("VmHWM"))
        print(f"Extraction child (one per reader): peak RSS {peak.split(':')[1].strip()}")
    child.close()
    print(f"\n{'library':<17}{'format':<7}{'docs':>6}{'docs/s':>10}{'MB/s':>8}{'CPU ms/doc':>12}")
    for library, kind, figures in rows:
        if figures is None:
            print(f"{library:<17}{kind:<7}{'-':>6}")
            continue
        docs, size, wall, cpu = figures
        print(
            f"{library:<17}{kind:<7}{docs:>6}{docs / wall:>10.0f}{size / wall / 1e6:>8.1f}"
            f"{1000 * cpu / docs:>12.2f}"
        )
    bench_archives(args.archives or max(1, args.documents // 10), settings)


if __name__ == "__main__":
    main()
