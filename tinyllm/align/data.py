"""Alignment data: JSONL files in the ecosystem's formats, encoded with the chat template, and batches.

Supervised fine-tuning (one conversation per line), either
    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
(OpenAI / Hugging Face chat data) or Alpaca's
    {"instruction": "...", "input": "... (optional)", "output": "..."}
Preference pairs for DPO:
    {"prompt": "..." or [messages], "chosen": "..." or [messages], "rejected": "..." or [messages]}
where a plain prompt string is a user turn and a plain answer string an assistant turn.

An example is (inputs, targets): the conversation's ids but the last as inputs, the next id as the
target where the model should learn it (the train mask of template.encode_chat) and IGNORE elsewhere.

Batches pad on the right: rows are padded to the longest with PAD_ID as input and IGNORE as target.
In a causal model a real token attends only to the tokens before it, never to padding after it, so
no attention mask is needed, and the ignored targets keep the padding out of the loss. We pad rather
than pack several conversations into one row because packing needs an attention mask that keeps each
conversation from seeing the one before it, which the fused causal attention kernel does not take;
the conversations here are short, so padding wastes little.
"""
import numpy as np

from ..data.loader import SeededLoader
from ..textfile import read_jsonl
from .template import encode_chat

IGNORE = -100  # the ignore_index of F.cross_entropy
PAD_ID = 0     # any id would do: padding is never attended to nor learned


def _records(path):
    """(where, record) of each line of a JSONL file, where = "file:line"; each line must be a JSON object."""
    for number, record in read_jsonl(path):
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield f"{path}:{number}", record


def _field(record, name, where, kinds, expected, optional=False):
    value = record.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kinds):
        got = "nothing" if name not in record else f"{type(value).__name__} {value!r:.60}"
        raise ValueError(f"{where}: field '{name}': expected {expected}, got {got}")
    return value


def _messages(value, where, field, default_role):
    """A list of messages from a message list, or from a plain string as one `default_role` turn."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    for i, message in enumerate(value):
        ok = (isinstance(message, dict) and message.get("role") in ("system", "user", "assistant")
              and isinstance(message.get("content"), str))
        if not ok:
            raise ValueError(f"{where}: field '{field}', message {i}: expected {{'role': 'system'|'user'|'assistant', "
                             f"'content': str}}, got {message!r:.80}")
    return list(value)


def read_conversations(path):
    """The conversations of an SFT file (`messages`, or Alpaca's `instruction`/`input`/`output`)."""
    conversations = []
    for where, record in _records(path):
        if "messages" in record:
            messages = _messages(_field(record, "messages", where, list, "a list of messages"), where, "messages", None)
        elif "instruction" in record or "output" in record:
            instruction = _field(record, "instruction", where, str, "a string")
            extra = _field(record, "input", where, str, "a string", optional=True)
            output = _field(record, "output", where, str, "a string")
            messages = [{"role": "user", "content": instruction + ("\n\n" + extra if extra else "")},
                        {"role": "assistant", "content": output}]
        else:
            raise ValueError(f"{where}: expected a 'messages' list or Alpaca 'instruction'/'output' fields, "
                             f"got fields {sorted(record)}")
        if not any(m["role"] == "assistant" for m in messages):
            raise ValueError(f"{where}: field 'messages': expected at least one assistant message to learn from")
        conversations.append(messages)
    return conversations


def read_pairs(path):
    """(prompt, chosen, rejected) message lists of a DPO file."""
    pairs = []
    for where, record in _records(path):
        expected = "a string or a list of messages"
        prompt, chosen, rejected = (_messages(_field(record, name, where, (str, list), expected), where, name, role)
                                    for name, role in (("prompt", "user"), ("chosen", "assistant"), ("rejected", "assistant")))
        pairs.append((prompt, chosen, rejected))
    return pairs


def encode_example(tokenizer, messages, max_len, response_start=0):
    """(inputs, targets) of a conversation, cut to max_len inputs; targets are IGNORE except where the
    train mask is on and the token comes at or after id position response_start."""
    ids, mask = encode_chat(tokenizer, messages)
    mask[:response_start] = False
    ids, mask = ids[:max_len + 1], mask[:max_len + 1]
    return ids[:-1], np.where(mask[1:], ids[1:], IGNORE)


def encode_pair(tokenizer, prompt, chosen, rejected, max_len):
    """(chosen example, rejected example): the prompt followed by each answer, targets on the answer only
    (an assistant turn inside the prompt is context, not something the pair prefers)."""
    start = len(encode_chat(tokenizer, prompt)[0])
    return tuple(encode_example(tokenizer, prompt + answer, max_len, start) for answer in (chosen, rejected))


def pad_batch(examples):
    """(inputs, targets), each (B, longest), from (inputs, targets) examples, right-padded."""
    longest = max(len(inputs) for inputs, _ in examples)
    inputs = np.full((len(examples), longest), PAD_ID, dtype=np.int64)
    targets = np.full((len(examples), longest), IGNORE, dtype=np.int64)
    for row, (x, y) in enumerate(examples):
        inputs[row, :len(x)], targets[row, :len(y)] = x, y
    return inputs, targets


def held_out_batches(items, batch_size, max_batches):
    """(start, slice) of items in order, batch_size at a time, at most max_batches slices (for evaluation)."""
    for start in range(0, min(len(items), max_batches * batch_size), batch_size):
        yield start, items[start:start + batch_size]


class ExampleLoader(SeededLoader):
    """Batches of example indices, each epoch's drawn from a generator seeded with (seed, epoch), so
    the loader's whole state is its step counter and a resumed run sees the same batches.

    Batches group examples of similar length, so little of a padded batch is padding: an epoch
    shuffles the examples, sorts each run of `pool` batches' worth of them by length, cuts the runs
    into batches and shuffles the batches (a "sortish" order). Each example comes once per epoch,
    except the epoch's last n % batch_size, which wait for another epoch's shuffle.
    """

    def __init__(self, lengths, batch_size, seed=0, pool=16):
        self.lengths = np.asarray(lengths)
        if len(self.lengths) < batch_size:
            raise ValueError(f"need at least one batch of examples: {len(self.lengths)} examples, batch size {batch_size}")
        self.batch_size, self.seed, self.pool, self.step = batch_size, seed, pool, 0
        self.per_epoch = len(self.lengths) // batch_size

    def epoch(self, number):
        """(per_epoch, batch_size) example indices: epoch `number`'s batches in the order they come."""
        rng = np.random.default_rng([self.seed, number])
        order = rng.permutation(len(self.lengths))[:self.per_epoch * self.batch_size]
        size = self.pool * self.batch_size
        runs = [run[np.argsort(self.lengths[run], kind="stable")] for run in np.split(order, range(size, len(order), size))]
        batches = np.concatenate(runs).reshape(self.per_epoch, self.batch_size)
        return batches[rng.permutation(self.per_epoch)]

    def __next__(self):
        number, index = divmod(self.step, self.per_epoch)
        self.step += 1
        return self.epoch(number)[index]
