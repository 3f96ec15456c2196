"""Reading a user's text file, with an error that says which file and where it went wrong."""
import json
import pathlib

BINARY_SNIFF_BYTES = 8192  # a NUL byte in the first 8 KiB marks a binary file


def read_utf8(path):
    """The contents of a strict UTF-8 text file.

    Raises FileNotFoundError for a missing file (or a folder), and ValueError naming the file for a
    binary file or for bytes that are not UTF-8 (with the byte offset of the first bad byte).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    data = path.read_bytes()
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        raise ValueError(f"{path}: looks like a binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: invalid UTF-8 at byte offset {err.start} (byte 0x{data[err.start]:02x})") from None


def read_jsonl(path):
    """(line number, object) for each non-blank line of a JSONL file (strict UTF-8); a line that is not
    JSON is a ValueError naming the file and the line. What the objects must hold is the caller's check."""
    for lineno, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
