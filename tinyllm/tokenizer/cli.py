"""`tinyllm tokenizer train|encode|decode`."""
import sys
from pathlib import Path

OUT_FILES = {"tinyllm": "tokenizer.tinyllm.json", "hf": "tokenizer.json", "gpt2": ""}


def load(path):
    """A tokenizer from our JSON, a Hugging Face tokenizer.json, or a folder holding one of those or
    GPT-2's vocab.json + merges.txt."""
    from .bpe import BPETokenizer
    path = Path(path)
    if path.is_dir():
        for name in ("tokenizer.tinyllm.json", "tokenizer.json"):
            if (path / name).is_file():
                return BPETokenizer.from_file(path / name)
        return BPETokenizer.from_gpt2_files(path / "vocab.json", path / "merges.txt")
    return BPETokenizer.from_file(path)


def progress_bar(done, total, width=40):
    filled = width * min(done, total) // max(total, 1)
    print(f"\rmerges [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)


def train(args):
    from .bpe import BPETokenizer
    tok = BPETokenizer.train([Path(f) for f in args.input], args.vocab_size, pattern=args.pattern,
                             special_tokens=args.special, min_frequency=args.min_frequency,
                             progress=None if args.quiet else progress_bar)
    if not args.quiet:
        print(file=sys.stderr)  # end the progress bar's line
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / OUT_FILES[args.format], format=args.format)
    print(f"saved {tok} to {out}")


def encode(args):
    text = args.text if args.text is not None else sys.stdin.read()
    print(" ".join(map(str, load(args.tokenizer).encode(text, allowed_special="all" if args.allow_special else ()))))


def decode(args):
    sys.stdout.write(load(args.tokenizer).decode(args.ids))


def add_commands(subparsers):
    group = subparsers.add_parser("tokenizer", help="train a BPE tokenizer, encode, decode")
    sub = group.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)

    p = sub.add_parser("train", help="learn a byte-level BPE tokenizer from UTF-8 text files")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="training text files (UTF-8)")
    p.add_argument("--vocab-size", type=int, required=True, help="tokens in all: 256 bytes + merges + specials")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the tokenizer into")
    p.add_argument("--pattern", default="gpt2", help='split pattern: "gpt2", "cl100k" or a regex (default gpt2)')
    p.add_argument("--special", nargs="*", default=["<|endoftext|>"], metavar="TOKEN",
                   help="special tokens (default <|endoftext|>)")
    p.add_argument("--min-frequency", type=int, default=2, help="do not merge pairs seen fewer times (default 2)")
    p.add_argument("--format", choices=list(OUT_FILES), default="tinyllm",
                   help="tinyllm: tokenizer.tinyllm.json; hf: tokenizer.json; gpt2: vocab.json + merges.txt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=train)

    p = sub.add_parser("encode", help="print the token ids of a text")
    p.add_argument("--tokenizer", required=True, metavar="PATH", help="tokenizer file or folder")
    p.add_argument("--text", help="text to encode (default: standard input)")
    p.add_argument("--allow-special", action="store_true", help="recognise special tokens in the text")
    p.set_defaults(handler=encode)

    p = sub.add_parser("decode", help="print the text of token ids")
    p.add_argument("--tokenizer", required=True, metavar="PATH", help="tokenizer file or folder")
    p.add_argument("ids", nargs="+", type=int, help="token ids")
    p.set_defaults(handler=decode)
