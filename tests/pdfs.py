"""Real PDFs for the tests and the benchmark, written by hand.

pypdf's PdfWriter cannot lay out text, and reportlab is not a dependency, so
`make_pdf` writes the few objects a PDF with text needs (a catalogue, a page
tree, pages drawing with Helvetica, a cross-reference table) itself. The
hostile ones (a slow page, a decompression bomb) are built the same way.
"""

import io
import zlib

from pypdf import PdfWriter

PAGE_SIZE = b"[0 0 612 792]"
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def make_pdf(pages: list[str], *, image_bytes: int = 0) -> bytes:
    """A PDF with one page per string, each line of it a line of text.

    `image_bytes` adds an uncompressed grey image of about that size to the
    first page: the cheap way to a large file (10 MB in milliseconds) whose
    text is still the pages' own, as in a scanned report.
    """
    contents = [_text_stream(text) for text in pages]
    if image_bytes:
        contents[0] = b"q 612 0 0 792 0 0 cm /Im1 Do Q\n" + contents[0]
    return _document(contents, image=_grey_image(image_bytes) if image_bytes else None)


def slow_pdf(operators: int = 900_000) -> bytes:
    """One page whose content stream shows a character `operators` times:
    10 KB on disk, about 30 s of pypdf's text extraction. (Each operator is two
    tokens; pypdf refuses a stream of more than 2,000,000 quickly.)"""
    stream = b"BT /F1 12 Tf 72 720 Td\n" + b"(x) Tj\n" * operators + b"ET"
    return _document([stream], compress=True)


def bomb_pdf(gigabytes: int = 4) -> bytes:
    """One page whose content stream inflates from a few MB to `gigabytes` GiB of zeros."""
    return _document([], raw_streams=(_deflated_zeros(gigabytes << 30),))


def encrypt(pdf: bytes, *, user_password: str, algorithm: str = "AES-256") -> bytes:
    """The same PDF encrypted; an empty `user_password` opens it without asking."""
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _text_stream(text: str) -> bytes:
    lines = b" T*\n".join(b"(" + _pdf_string(line) + b") Tj" for line in text.split("\n"))
    return b"BT /F1 12 Tf 14 TL 72 720 Td\n" + lines + b"\nET"


def _pdf_string(line: str) -> bytes:
    escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return escaped.encode("cp1252", errors="replace")


def _grey_image(size: int) -> bytes:
    width = 1000
    height = max(1, size // width)
    header = b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8"
    return _stream(header % (width, height), bytes(range(256)) * (width * height // 256) + bytes(width * height % 256))


def _deflated_zeros(size: int) -> bytes:
    """A zlib stream of `size` zero bytes, built in milliseconds.

    Compressing gigabytes takes seconds a GiB; but after a full flush deflate
    forgets what came before, so one compressed MiB of zeros repeats as is,
    and the Adler-32 of n zeros is (n mod 65521) << 16 | 1.
    """
    mib = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(mib)) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = ((size % 65521) << 16) | 1
    return b"\x78\xda" + block * (size // mib) + compressor.flush() + adler.to_bytes(4, "big")


def _stream(dictionary_head: bytes, data: bytes) -> bytes:
    return dictionary_head + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _document(
    contents: list[bytes], *, compress: bool = False, image: bytes | None = None, raw_streams: tuple[bytes, ...] = ()
) -> bytes:
    """Objects 1 catalogue, 2 page tree, 3 font, 4 image (or null), then a page and its content per stream."""
    streams = [(zlib.compress(c), b" /Filter /FlateDecode") if compress else (c, b"") for c in contents]
    streams += [(raw, b" /Filter /FlateDecode") for raw in raw_streams]
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(streams)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(streams)),
        FONT,
        image or b"null",
    ]
    xobjects = b" /XObject << /Im1 4 0 R >>" if image else b""
    for i, (data, filter_) in enumerate(streams):
        content = first_page + 2 * i + 1
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox %s /Resources << /Font << /F1 3 0 R >>%s >> /Contents %d 0 R >>"
            % (PAGE_SIZE, xobjects, content)
        )
        objects.append(_stream(b"<<" + filter_, data))
    return _with_xref(objects)


def _with_xref(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
