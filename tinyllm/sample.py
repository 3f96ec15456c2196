"""`tinyllm sample`: text from a trained run, streamed to the terminal as it is generated."""
import codecs
import json
import pathlib
import sys

from . import checkpoint
from .align.template import END, encode_prompt, render_chat
from .generate import generate
from .models.gpt import GPT, GPTConfig
from .tokenizer import BPETokenizer

EOT = "<|endoftext|>"


def load_run_model(run_dir, **model_changes):
    """(model, tokenizer) of a training run, with the weights of its newest checkpoint.

    model_changes: GPTConfig fields to change that leave the weights' shapes as they are (dropout=0.0)."""
    run_dir = pathlib.Path(run_dir)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir}: not a training run (no config.json)")
    model = GPT(GPTConfig(**{**json.loads(config_file.read_text())["model"], **model_changes}))
    folder = checkpoint.latest_checkpoint(run_dir)
    if folder is None:
        raise ValueError(f"{run_dir}: the run has no checkpoint yet")
    checkpoint.load_checkpoint(folder, model)
    return model.eval(), BPETokenizer.from_file(run_dir / "tokenizer.json")


def load_chat_run(run_dir):
    """(model, tokenizer) of a run that knows the chat template (a run of tinyllm sft or dpo), or a clear
    error for one that does not (its tokenizer lacks the chat markers)."""
    model, tokenizer = load_run_model(run_dir)
    if tokenizer.token_to_id(END) is None:
        raise ValueError(f"{run_dir}: its tokenizer has no chat markers ({END}...); chat needs a run fine-tuned "
                         f"on the chat template (tinyllm sft)")
    return model, tokenizer


class TokenPrinter:
    """A `stream` for generate: writes each new token's text to out as it comes and keeps it all.

    Tokens are decoded incrementally, so a character split across tokens is written once it is whole;
    special tokens are written as `specials` ({id: text}) says.
    """

    def __init__(self, tokenizer, out, specials=None):
        self.tokenizer, self.out, self.specials = tokenizer, out, specials or {}
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pieces = []

    def __call__(self, token):
        token = int(token)
        if token in self.specials:
            self.write(self.specials[token])
        else:
            self.write(self.decoder.decode(self.tokenizer.decode_bytes([token])))

    def write(self, text):
        self.pieces.append(text)
        self.out.write(text)
        self.out.flush()

    def finish(self):
        """Write what the decoder still holds (bytes of an unfinished character); return all the text."""
        self.write(self.decoder.decode(b"", final=True))
        return "".join(self.pieces)


def sample_text(model, tokenizer, prompt="", max_new_tokens=200, out=None, chat=False, **sampling):
    """Generate a continuation of prompt, writing the prompt and each decoded token to out; return the text.

    An empty prompt starts from the end-of-text token, i.e. from the start of a new document.
    chat: the prompt is a user's message, laid out with the chat template, and the reply ends at END.
    """
    if chat:
        messages = [{"role": "user", "content": prompt}]
        ids, prompt = encode_prompt(tokenizer, messages), render_chat(messages, add_generation_prompt=True)
        specials, sampling["stop_tokens"] = {tokenizer.token_to_id(END): ""}, (tokenizer.token_to_id(END),)
    else:
        ids = tokenizer.encode(prompt, allowed_special="all") if prompt else [tokenizer.token_to_id(EOT)]
        specials = {tokenizer.token_to_id(EOT): "\n"}
    printer = TokenPrinter(tokenizer, out or sys.stdout, specials)
    printer.write(prompt)
    generate(model, ids, max_new_tokens, stream=printer, **sampling)
    text = printer.finish()
    printer.out.write("\n")
    return text


def add_sampling_arguments(p, max_new_tokens):
    """The flags of `tinyllm sample` and `tinyllm chat` that shape the sampling (see generate.py)."""
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    p.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)


def sampling_options(args):
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty)


def add_commands(subparsers):
    p = subparsers.add_parser("sample", help="generate text from a trained run")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--prompt", default="", help="text to continue (default: a new document)")
    p.add_argument("--chat", action="store_true", help="the prompt is a user's message: lay it out with the chat "
                                                       "template and print the reply (for runs of tinyllm sft/dpo)")
    add_sampling_arguments(p, max_new_tokens=200)

    def run(args):
        model, tokenizer = (load_chat_run if args.chat else load_run_model)(args.run)
        sample_text(model, tokenizer, args.prompt, args.max_new_tokens, chat=args.chat, seed=args.seed, **sampling_options(args))
    p.set_defaults(handler=run)
