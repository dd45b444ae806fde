"""Small real documents of each format extraction claims, made by the tests (issue 15).

Each maker returns the file's bytes; the libraries are test dependencies
(pyproject's ``test`` extra). Fixed times and authors, so tests can assert
the exact fields.
"""

from __future__ import annotations

import io
import zipfile
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
