"""Cleaning: make every document plain, normalised text, and drop those with nothing to learn from.

What `clean_text` does to one document, in order:
1. Unicode NFC (so "é" is one code point however it was typed), no byte-order mark;
2. line endings to "\\n", trailing spaces off every line, at most one blank line in a row, so that
   paragraphs are exactly the blocks separated by "\\n\\n";
3. the Project Gutenberg header (everything up to its "*** START OF ..." line, or the old
   "*END*THE SMALL PRINT!" line) and footer (from "*** END OF ..." or "End of the Project Gutenberg
   ...", which is followed by the licence) cut off.

`clean_documents` then drops empty documents and tiny ones (fewer than `min_words` words) and
reports every change and removal with its reason.
"""
import dataclasses
import re
import unicodedata

from .sources import Document

_HEADER_END = re.compile(
    r"^[ \t]*\*{3}[ \t]*START OF (?:THE|THIS) PROJECT GUTENBERG.*$"
    r"|^.*\*END\*THE SMALL PRINT!.*$", re.IGNORECASE | re.MULTILINE)
_FOOTER_START = re.compile(
    r"^[ \t]*\*{3}[ \t]*END OF (?:THE|THIS) PROJECT GUTENBERG.*$"
    r"|^[ \t]*End of (?:the )?Project Gutenberg.*$", re.IGNORECASE | re.MULTILINE)
_TRAILING_SPACE = re.compile(r"[ \t\f\v]+$", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n{3,}")


@dataclasses.dataclass
class CleanReport:
    docs_in: int = 0
    docs_out: int = 0
    removed: list = dataclasses.field(default_factory=list)   # (name, reason)
    stripped: list = dataclasses.field(default_factory=list)  # (name, what was cut)


def clean_text(text):
    """Return (cleaned text, list of what was cut, e.g. ["Gutenberg header (812 chars)"])."""
    text = unicodedata.normalize("NFC", text).lstrip("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cut = []
    header = _HEADER_END.search(text)
    if header:
        cut.append(f"Gutenberg header ({header.end()} chars)")
        text = text[header.end():]
    footer = _FOOTER_START.search(text)
    if footer:
        cut.append(f"Gutenberg footer and licence ({len(text) - footer.start()} chars)")
        text = text[:footer.start()]
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_RUN.sub("\n\n", text).strip("\n")
    return text, cut


def clean_documents(documents, min_words=20, report=None):
    """Yield cleaned documents, dropping empty and tiny ones; fill `report` (a CleanReport) as it goes."""
    report = CleanReport() if report is None else report
    for doc in documents:
        report.docs_in += 1
        text, cut = clean_text(doc.text)
        report.stripped += [(doc.name, what) for what in cut]
        words = len(text.split())
        if words == 0:
            report.removed.append((doc.name, "empty"))
        elif words < min_words:
            report.removed.append((doc.name, f"tiny ({words} words < {min_words})"))
        else:
            report.docs_out += 1
            yield Document(doc.name, text)
