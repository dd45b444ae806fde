"""Small real documents of each format extraction claims, made by the tests (issue 15).

Each maker returns the file's bytes; the libraries are test dependencies
(pyproject's ``test`` extra). Fixed times and authors, so tests can assert
the exact fields.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from datetime import UTC, datetime

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def pdf(pages: list[str], *, title: str = "Quarterly report", password: str | None = None,
        compress: bool = True) -> bytes:  # fmt: skip
    from fpdf import FPDF

    document = FPDF()
    document.set_compression(compress)
    document.set_title(title)
    document.set_author("Ada Lovelace")
    document.set_creation_date(CREATED)
    document.set_font("helvetica", size=12)
    for text in pages:
        document.add_page()
        for line in text.split("\n"):
            document.cell(text=line)
            document.ln()
    if password is not None:
        document.set_encryption(owner_password="owner", user_password=password)
    return bytes(document.output())


def pdf_without_text() -> bytes:
    """A page with a drawing and no text layer (what a scan looks like, without OCR)."""
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.rect(20, 20, 100, 50, style="F")
    return bytes(document.output())


def docx() -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.core_properties.title = "Minutes"
    document.core_properties.author = "Grace Hopper"
    document.core_properties.created = CREATED
    document.core_properties.modified = CREATED
    document.add_heading("Agenda", 1)
    document.add_paragraph("First paragraph.")
    table = document.add_table(rows=2, cols=2)
    for (row, column), text in {(0, 0): "Name", (0, 1): "Qty", (1, 0): "Apples",
                                (1, 1): "3"}.items():  # fmt: skip
        table.cell(row, column).text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Fruit"
    sheet.append(["Name", "Qty"])
    sheet.append(["Apples", 3])
    book.create_sheet("Veg").append(["Carrot", 7])
    book.properties.title = "Stock"
    book.properties.creator = "Linus"
    book.properties.created = CREATED.replace(tzinfo=None)
    book.properties.modified = CREATED.replace(tzinfo=None)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    assert slide.shapes.title is not None
    slide.shapes.title.text = "Launch plan"
    slide.placeholders[1].text = "Ship it"  # type: ignore[attr-defined]
    deck.core_properties.title = "Deck"
    deck.core_properties.author = "Margaret Hamilton"
    deck.core_properties.created = CREATED.replace(tzinfo=None)
    deck.core_properties.modified = CREATED.replace(tzinfo=None)
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def odt() -> bytes:
    """An OpenDocument text, written by hand: the standard's minimal package."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        "<office:body><office:text>"
        '<text:h text:outline-level="1">Open heading</text:h>'
        "<text:p>Open paragraph.</text:p>"
        "</office:text></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        ' manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/"'
        ' manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        # First and stored, as the standard requires: that is how it is detected.
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text",
            compress_type=zipfile.ZIP_STORED,
        )  # fmt: skip
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


RTF = rb"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard Hello {\b bold} RTF.\par}"

HTML = (
    b"<!DOCTYPE html><html><head><title>Hello page</title>"
    b"<style>body { color: red }</style><script>var secret = 'do not index';</script>"
    b"</head><body><h1>Welcome</h1><p>Visible text.</p>"
    b"<script>document.write('nor this')</script></body></html>"
)

EML = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Lunch =?utf-8?q?caf=C3=A9?=\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"See you at the caf=C3=A9 at noon.=\r\n"
    b" Bring the =3D sign.\r\n"
    b"--b1\r\n"
    b'Content-Type: text/plain; name="menu.txt"\r\n'
    b'Content-Disposition: attachment; filename="menu.txt"\r\n'
    b"\r\n"
    b"Soup of the day.\r\n"
    b"--b1--\r\n"
)


def zip_folders() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a/b/c.txt", "nested")
        archive.writestr("top.txt", "top")
    return out.getvalue()


def zip_bomb(size: int = 200 * 1024 * 1024) -> bytes:
    """A DOCX whose document part inflates to ``size`` bytes of one repeated paragraph.

    A parser that reads it whole needs far more memory than the file's size:
    the crafted pathological file of issue 15.
    """
    out = io.BytesIO()
    head = (
        b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w='
        b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
    )
    paragraph = b"<w:p><w:r><w:t>" + b"A" * 4000 + b"</w:t></w:r></w:p>"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
        )
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(head)
            chunk = paragraph * 256
            for _ in range(size // len(chunk)):
                part.write(chunk)
            part.write(b"</w:body></w:document>")
    return out.getvalue()


# --- Archives (issue 15: members as documents) ------------------------------------------

#: One fixed time for every member, so references, fields and text are exact.
MEMBER_TIME = (2026, 3, 4, 5, 6, 8)


def zip_of(members: dict[str, bytes]) -> bytes:
    """A zip of ``members`` (name: bytes), in that order, deflated, all at MEMBER_TIME."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, MEMBER_TIME), data,
                             compress_type=zipfile.ZIP_DEFLATED)  # fmt: skip
    return out.getvalue()


def zip_nested() -> bytes:
    """A zip with nested folders, a DOCX, a zip inside it, and a traversal name."""
    inner = zip_of({"deep/inner.txt": b"inner text"})
    return zip_of({
        "folder/": b"",
        "folder/sub/notes.txt": b"nested notes",
        "folder/report.docx": docx(),
        "inner.zip": inner,
        "../../etc/passwd": b"not a way out",
        "/abs|olute%.txt": b"absolute",
    })  # fmt: skip


def tar_of(members: dict[str, bytes], *, compression: str = "") -> bytes:
    """A tar (``compression`` "gz" for a .tar.gz) of ``members``, plus a folder and a link."""
    import tarfile
    import time as time_module

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}") as archive:
        folder = tarfile.TarInfo("docs")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time_module.mktime((*MEMBER_TIME, 0, 0, 0)) - time_module.timezone)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("docs/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    return out.getvalue()


EML_ZIP = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Files\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Two files attached.\r\n"
    b"--b1\r\n"
    b'Content-Type: text/plain; name="menu.txt"\r\n'
    b'Content-Disposition: attachment; filename="menu.txt"\r\n'
    b"\r\n"
    b"Soup of the day.\r\n"
    b"--b1\r\n"
    b'Content-Type: text/plain; name="menu.txt"\r\n'
    b'Content-Disposition: attachment; filename="menu.txt"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"RGVzc2VydCBvZiB0aGUgZGF5Lg==\r\n"
    b"--b1--\r\n"
)


def zip_bomb_members(members: int = 4, mib: int = 256) -> bytes:
    """A crafted zip bomb: ``members`` members of ``mib`` MiB of zero bytes each,
    about 1/1000 of that packed (1 GiB in about 1 MiB by default).

    Made by hand in well under a second: one MiB of zeros deflated once with
    a full flush is a block that needs no history, so the member's data is
    that block ``mib`` times and an empty final block; the headers are honest
    (sizes, CRC-32), so only a limit on the bytes inflated can stop it.
    """
    import struct

    chunk = b"\0" * (1024 * 1024)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    data = block * mib + b"\x03\x00"  # the final block: empty, fixed Huffman codes
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    size = mib * len(chunk)
    dos_time = (MEMBER_TIME[3] << 11) | (MEMBER_TIME[4] << 5) | (MEMBER_TIME[5] // 2)
    dos_date = ((MEMBER_TIME[0] - 1980) << 9) | (MEMBER_TIME[1] << 5) | MEMBER_TIME[2]
    out, central = io.BytesIO(), io.BytesIO()
    for n in range(members):
        name = f"zeros{n}.txt".encode()
        offset = out.tell()
        fixed = struct.pack("<HHHHHIIIHH", 20, 0, 8, dos_time, dos_date, crc, len(data), size,
                            len(name), 0)  # fmt: skip
        out.write(b"PK\x03\x04" + fixed + name + data)
        central.write(b"PK\x01\x02" + struct.pack("<H", 20) + fixed
                      + struct.pack("<HHHII", 0, 0, 0, 0, offset)
                      + name)  # fmt: skip
    start = out.tell()
    directory = central.getvalue()
    out.write(directory)
    out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, members, members, len(directory),
                                           start, 0))  # fmt: skip
    return out.getvalue()
