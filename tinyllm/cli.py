"""The `tinyllm` command. Each command group lives beside the code it drives and registers itself
here through an `add_commands(subparsers)` function; this file only lists the groups."""
import argparse
import importlib
import sys

# Modules that define `add_commands(subparsers)`; each adds its subcommands with `set_defaults(handler=fn)`.
COMMAND_MODULES = [
    "tinyllm.demo",
    "tinyllm.tokenizer.cli",
    "tinyllm.data.cli",
    "tinyllm.train",
    "tinyllm.sample",
    "tinyllm.quickstart",
    "tinyllm.align.sft",
    "tinyllm.align.dpo_train",
    "tinyllm.align.chat",
    "tinyllm.align.demo",
]


def build_parser():
    parser = argparse.ArgumentParser(prog="tinyllm", description="Build, train and run a small GPT from scratch.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (ValueError, FileNotFoundError, OSError) as err:  # user errors: one clear line, no traceback
        print(f"tinyllm {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
