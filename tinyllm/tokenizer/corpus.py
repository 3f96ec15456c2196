"""Reading a training corpus: texts given directly, or files of UTF-8 text, with errors that say
which file and where."""
import os

from ..textfile import read_utf8


def iter_texts(texts_or_files):
    """Yield each text of the corpus. A `str` is a text; an `os.PathLike` (e.g. pathlib.Path) is a
    file to read. A single text or path may be given without a list around it."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    for item in texts_or_files:
        if isinstance(item, os.PathLike):
            yield read_utf8(item)
        elif isinstance(item, str):
            yield item
        else:
            raise ValueError(f"the corpus must be texts (str) or files (pathlib.Path), not {type(item).__name__}")
