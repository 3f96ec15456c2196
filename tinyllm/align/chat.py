"""`tinyllm chat`: talk with a fine-tuned run in the terminal, the reply streamed as it is generated.

A ChatSession holds the conversation twice: as messages, and as the token ids the model has read,
whose keys and values stay in a KVCache from turn to turn. A turn appends the user's message and the
generation prompt to those ids, and generate feeds the model only what the cache lacks (the end of
the last reply and the new turn), never the whole conversation again.

The ids of a reply are the ones the model generated, which need not be the ones the tokenizer would
give its text, so the session keeps them rather than encoding the messages again: the cache stays
exactly what the model computed.

A model with learned positions reads at most block_size tokens. Before a turn would leave less
than `reserve` of them for the reply, the oldest exchanges are dropped (the system message stays),
so the model always sees whole turns; the positions of what is left change, so the cache starts over.
"""
import sys

import numpy as np

from ..generate import generate
from ..models.gpt import KVCache
from ..sample import TokenPrinter, add_sampling_arguments, load_chat_run, sampling_options
from .template import END, SEPARATOR, encode_chat, encode_prompt

HELP = ("commands: /reset (forget the conversation), /system TEXT (start again with this system message), /quit\n"
        "a line that ends with \\ goes on to the next")


class ChatSession:
    """A conversation with a model that knows the chat template.

    reply(text, stream) answers a user's message and returns the reply's text; reset() forgets the
    conversation; set_system(text) starts a new one with that system message (None: without one).
    sampling: generate's temperature, top_k, top_p, repetition_penalty; seed makes the whole
    conversation reproducible (each turn draws its own seed from it).
    """

    def __init__(self, model, tokenizer, system=None, max_new_tokens=128, seed=None, **sampling):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.sampling = max_new_tokens, sampling
        self.seeds = np.random.default_rng(seed) if seed is not None else None
        self.end = tokenizer.token_to_id(END)
        self.set_system(system)

    def set_system(self, system):
        self.system = system
        self.reset()

    def reset(self):
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self._restart()

    def _restart(self):
        """Encode the messages afresh, with an empty cache."""
        self.ids = encode_chat(self.tokenizer, self.messages)[0].tolist()
        self.cache = KVCache()

    def reply(self, text, stream=None):
        user = {"role": "user", "content": text}
        self._make_room(user)
        prompt = self.ids + encode_prompt(self.tokenizer, [user])
        seed = int(self.seeds.integers(2**63)) if self.seeds is not None else None
        try:
            out = generate(self.model, prompt, self.max_new_tokens, stop_tokens=(self.end,), seed=seed, stream=stream,
                           cache=self.cache, **self.sampling)
        except BaseException:  # interrupted (Ctrl-C): the cache may hold part of this turn, so it goes
            self.cache = KVCache()
            raise
        answer = out.tolist()[len(prompt):]
        if answer[-1:] == [self.end]:
            answer.pop()
        self.messages += [user, {"role": "assistant", "content": self.tokenizer.decode(answer)}]
        self.ids = prompt + answer + [self.end] + self.tokenizer.encode(SEPARATOR)
        return self.messages[-1]["content"]

    @property
    def reserve(self):
        """The tokens kept free for a reply: max_new_tokens, but at most half the context."""
        return min(self.max_new_tokens, self.model.config.block_size // 2)

    def _make_room(self, user):
        """With learned positions, drop the oldest exchanges until the new turn leaves `reserve` tokens."""
        if self.model.config.pos_encoding != "learned":
            return
        limit = self.model.config.block_size - self.reserve
        start = 1 if self.system else 0
        while len(self.ids) + len(encode_prompt(self.tokenizer, [user])) > limit and len(self.messages) > start:
            del self.messages[start:start + 2]
            self._restart()


def chat_loop(session, read=input, out=None):
    """The REPL: read a message, answer it (streamed to out), until /quit or the end of the input (Ctrl-D).
    Ctrl-C stops a reply (the turn is forgotten) or drops the line being typed."""
    out = out or sys.stdout
    out.write(f"tinyllm chat\n{HELP}\n")
    while True:
        try:
            line = _read_message(read)
        except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as in Python's REPL
            out.write("\n")
            continue
        except EOFError:  # Ctrl-D
            out.write("\n")
            return
        command, _, argument = line.partition(" ")
        if not line:
            continue
        elif command in ("/quit", "/exit"):
            return
        elif command == "/reset":
            session.reset()
            out.write("(the conversation is forgotten)\n")
        elif command == "/system":
            session.set_system(argument.strip() or None)
            out.write(f"(a new conversation, system message: {session.system or 'none'})\n")
        elif command.startswith("/"):
            out.write(f"(unknown command {command})\n{HELP}\n")
        else:
            _answer(session, line, out)


def _read_message(read):
    """One message: a line, or several when each but the last ends with a backslash."""
    lines = [read("you> ")]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(read("...  "))
    return "\n".join(lines).strip()


def _answer(session, line, out):
    out.write("bot> ")
    printer = TokenPrinter(session.tokenizer, out, {session.end: ""})
    try:
        session.reply(line, stream=printer)
    except KeyboardInterrupt:
        printer.write(" [interrupted; this turn is forgotten]")
    printer.finish()
    out.write("\n")


def add_commands(subparsers):
    p = subparsers.add_parser("chat", help="talk with a fine-tuned run (tinyllm sft/dpo) in the terminal")
    p.add_argument("--run", required=True, help="run directory of tinyllm sft or tinyllm dpo")
    p.add_argument("--system", default=None, help="a system message to start with")
    add_sampling_arguments(p, max_new_tokens=64)

    def run(args):
        model, tokenizer = load_chat_run(args.run)
        session = ChatSession(model, tokenizer, args.system, args.max_new_tokens, args.seed, **sampling_options(args))
        chat_loop(session)
    p.set_defaults(handler=run)
