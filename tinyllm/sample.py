"""`tinyllm sample`: text from a trained run, streamed to the terminal as it is generated."""
import codecs
import json
import pathlib
import sys

from . import checkpoint
from .generate import generate
from .models.gpt import GPT, GPTConfig
from .tokenizer import BPETokenizer

EOT = "<|endoftext|>"


def load_run_model(run_dir):
    """(model, tokenizer) of a training run, with the weights of its newest checkpoint."""
    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir}: not a training run (no config.json)")
    model = GPT(GPTConfig(**json.loads(config_file.read_text())["model"]))
    folder = checkpoint.latest_checkpoint(run_dir)
    if folder is None:
        raise ValueError(f"{run_dir}: the run has no checkpoint yet")
    checkpoint.load_checkpoint(folder, model)
    return model.eval(), BPETokenizer.from_file(run_dir / "tokenizer.json")


def sample_text(model, tokenizer, prompt="", max_new_tokens=200, out=None, **sampling):
    """Generate a continuation of prompt, writing the prompt and each decoded token to out; return the text.

    An empty prompt starts from the end-of-text token, i.e. from the start of a new document.
    Tokens are decoded incrementally, so a character split across tokens is printed once it is whole.
    """
    out = out or sys.stdout
    ids = tokenizer.encode(prompt, allowed_special="all") if prompt else [tokenizer.token_to_id(EOT)]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    eot = tokenizer.token_to_id(EOT)
    pieces = [prompt]
    out.write(prompt)

    def stream(token):
        text = decoder.decode(tokenizer.decode_bytes([int(token)])) if token != eot else "\n"
        pieces.append(text)
        out.write(text)
        out.flush()

    generate(model, ids, max_new_tokens, stream=stream, **sampling)
    tail = decoder.decode(b"", final=True)
    out.write(tail + "\n")
    return "".join(pieces) + tail


def add_commands(subparsers):
    p = subparsers.add_parser("sample", help="generate text from a trained run")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)

    def run(args):
        model, tokenizer = load_run_model(args.run)
        sample_text(model, tokenizer, args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                    top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed)
    p.set_defaults(handler=run)
