"""Small, valid one-page PDFs with Japanese text, written by hand (no library).

The text uses the standard Adobe-Japan1 CID font ``HeiseiKakuGo-W5`` with the ``UniJIS-UCS2-H``
encoding, which every PDF reader provides without embedding: each character is written as its
UCS-2 code in a hex string. The file has a correct cross-reference table, so strict readers open it.
"""

from __future__ import annotations


def _utf16_hex(text: str) -> str:
    return "".join(f"{ord(c):04X}" if ord(c) <= 0xFFFF else "FF1F" for c in text)


def _info_string(text: str) -> str:
    return "<FEFF" + _utf16_hex(text) + ">"


def make_pdf(title: str, lines: list[str]) -> bytes:
    """A4 page: ``title`` large at the top, then ``lines``."""
    ops = ["BT", "/F1 20 Tf", "56 780 Td", f"<{_utf16_hex(title)}> Tj", "ET"]
    y = 740
    for line in lines:
        ops += ["BT", "/F1 11 Tf", f"56 {y} Td", f"<{_utf16_hex(line)}> Tj", "ET"]
        y -= 18
        if y < 40:
            break
    content = "\n".join(ops).encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /HeiseiKakuGo-W5 /Encoding /UniJIS-UCS2-H "
        b"/DescendantFonts [6 0 R] >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /HeiseiKakuGo-W5 "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 2 >> /FontDescriptor 7 0 R >>",
        b"<< /Type /FontDescriptor /FontName /HeiseiKakuGo-W5 /Flags 4 /FontBBox [-92 -250 1010 922] "
        b"/ItalicAngle 0 /Ascent 752 /Descent -221 /CapHeight 737 /StemV 114 >>",
        b"<< /Title " + _info_string(title).encode("ascii") + b" /Producer (Kuroko sandbox B-cart) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)
