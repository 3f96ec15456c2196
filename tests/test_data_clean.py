"""Cleaning: Gutenberg boilerplate, line endings, Unicode, empty and tiny documents."""
from tinyllm.data.clean import CleanReport, clean_documents, clean_text
from tinyllm.data.sources import Document

BODY = "ACT I.\n\nEnter Hamlet.\n\nHam.\nTo be, or not to be, that is the question."
GUTENBERG = (
    "\ufeffThe Project Gutenberg EBook of Hamlet\r\n\r\nThis eBook is for the use of anyone\r\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\n\r\n"
    + BODY.replace("\n", "\r\n") + "   \r\n\r\n"
    "End of the Project Gutenberg EBook of Hamlet\r\n\r\n*** END OF THIS PROJECT GUTENBERG EBOOK ***\r\n"
    "1.F.3. LIMITED RIGHT OF REPLACEMENT OR REFUND\r\n")


def test_gutenberg_header_footer_and_licence_are_stripped():
    text, cut = clean_text(GUTENBERG)
    assert text == BODY
    assert [c.split(" (")[0] for c in cut] == ["Gutenberg header", "Gutenberg footer and licence"]


def test_old_small_print_header_is_stripped():
    text, _ = clean_text("legal stuff\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n" + BODY)
    assert text == BODY


def test_text_without_boilerplate_is_only_normalised():
    text, cut = clean_text("Cafe\u0301\r\nline two\t \r\n\n\n\n\nnext paragraph\n")
    assert text == "Caf\u00e9\nline two\n\nnext paragraph"  # NFC, \n, no trailing space, one blank line
    assert cut == []


def test_empty_and_tiny_documents_are_dropped_and_reported():
    report = CleanReport()
    docs = [Document("empty", " \n\n "), Document("tiny", "Exit."), Document("play", BODY)]
    kept = list(clean_documents(docs, min_words=5, report=report))
    assert [d.name for d in kept] == ["play"]
    assert report.removed == [("empty", "empty"), ("tiny", "tiny (1 words < 5)")]
    assert (report.docs_in, report.docs_out) == (3, 1)
