"""Reading a training corpus: texts given directly, or files of UTF-8 text, with errors that say
which file and where."""
import os
from pathlib import Path


def read_text_file(path):
    """The contents of a UTF-8 text file; a clear error for a missing file or one that is not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file" + (" (it is a directory)" if path.is_dir() else ""))
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text: byte 0x{data[err.start]:02x} at byte offset {err.start} "
                         f"({err.reason})") from None


def iter_texts(texts_or_files):
    """Yield each text of the corpus. A `str` is a text; an `os.PathLike` (e.g. pathlib.Path) is a
    file to read. A single text or path may be given without a list around it."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    for item in texts_or_files:
        if isinstance(item, os.PathLike):
            yield read_text_file(item)
        elif isinstance(item, str):
            yield item
        else:
            raise ValueError(f"the corpus must be texts (str) or files (pathlib.Path), not {type(item).__name__}")
