"""Characters XML 1.0 forbids, replaced so that one bad value cannot block an account.

The service serializes whatever a sender typed into a subject or a field. A control character
(``&#1;``, ``&#x1b;``, a NUL), a lone surrogate or bytes that are not UTF-8 make the answer
ill-formed, and the same answer comes back every time: retrying cannot help. Such characters do
reach mail systems, so an answer that fails to parse is looked at once more, and each forbidden
character (raw, or as a character reference) and each undecodable byte becomes U+FFFD, the
replacement character. If that makes the answer well-formed, it is read, and the caller warns,
naming the message and the field (docs/listrak-api.md §6). An answer that is ill-formed for any
other reason (a truncated body) stays ill-formed here and is retried as before.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

REPLACEMENT = "\ufffd"
_RAW = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CHAR_REF = re.compile(r"&#(x[0-9A-Fa-f]+|[0-9]+);")
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def xml_allows(code_point: int) -> bool:
    """Whether XML 1.0 allows the character (its ``Char`` production)."""
    return (code_point in (0x9, 0xA, 0xD) or 0x20 <= code_point <= 0xD7FF
            or 0xE000 <= code_point <= 0xFFFD or 0x10000 <= code_point <= 0x10FFFF)


def replace_forbidden(body: bytes) -> tuple[bytes, int]:
    """``body`` with every character XML 1.0 forbids replaced by U+FFFD, and how many were.

    Only UTF-8 bodies are repaired (the service's encoding); any other is returned as is, 0.
    """
    declared = _DECLARED.match(body)
    if declared and declared.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return body, 0
    text = body.decode("utf-8", errors="replace")
    count = text.count(REPLACEMENT) - body.count(REPLACEMENT.encode())
    text, raw = _RAW.subn(REPLACEMENT, text)
    references = 0

    def reference(match: re.Match[str]) -> str:
        nonlocal references
        value = match.group(1)
        code_point = int(value[1:], 16) if value[0] == "x" else int(value)
        if xml_allows(code_point):
            return match.group(0)
        references += 1
        return "&#xFFFD;"

    text = _CHAR_REF.sub(reference, text)
    count += raw + references
    return (text.encode("utf-8"), count) if count else (body, 0)




def where_replaced(table: pa.Table) -> str:
    """Which fields of which rows hold U+FFFD, for the warning: ``Subject of MsgID 12, 15``.

    Rows are named by their ``MsgID`` (or ``ListID``, ``EmailAddress``) where the table has one,
    else by position.
    """
    key = next((name for name in ("MsgID", "ListID", "EmailAddress") if name in table.column_names), None)
    parts = []
    for name in table.column_names:
        column = table.column(name)
        if not pa.types.is_string(column.type):
            continue
        hit = pc.fill_null(pc.match_substring(column, REPLACEMENT), False)
        if not pc.any(hit).as_py():
            continue
        rows = table.filter(hit)
        labels = rows.column(key).to_pylist() if key else [i + 1 for i, h in enumerate(hit.to_pylist()) if h]
        parts.append(f"{name} of {key or 'item'} {', '.join(map(str, labels[:5]))}"
                     + (f" and {len(labels) - 5} more" if len(labels) > 5 else ""))
    return "; ".join(parts) or "a field this run does not keep"


__all__ = ["REPLACEMENT", "replace_forbidden", "where_replaced", "xml_allows"]
