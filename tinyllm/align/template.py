"""The chat template: a conversation as one token sequence, and which of its tokens the model learns.

Each message is its role's marker, its content and the end-of-turn marker, then a newline:

    <|system|>You answer briefly.<|end|>
    <|user|>Reverse the word: crown<|end|>
    <|assistant|>nworc<|end|>

The four markers are special tokens, so they are one id each and never split or merged with text.
A model is asked for a reply by ending the prompt with `<|assistant|>` (the generation prompt); it
answers and closes with `<|end|>`, where generation stops.

In training only the assistant's tokens are targets: its content and its `<|end|>` (so it learns to
stop), not the markers or the other turns, which it is given and need not predict.
"""
import numpy as np

from ..tokenizer import BPETokenizer

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
CHAT_TOKENS = (SYSTEM, USER, ASSISTANT, END)
ROLES = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
SEPARATOR = "\n"  # after each turn's <|end|>, for legibility; not a target


def add_chat_tokens(tokenizer):
    """The tokenizer plus the chat markers as special tokens, with new ids after the largest id in use.

    Every existing id keeps its meaning (the pretrained embeddings still fit); markers it already has
    are kept as they are, so adding twice changes nothing.
    """
    specials = dict(tokenizer.special_tokens)
    next_id = max([*tokenizer.vocab, *specials.values()]) + 1
    for token in CHAT_TOKENS:
        if token not in specials:
            specials[token], next_id = next_id, next_id + 1
    return BPETokenizer(tokenizer.vocab, tokenizer.merges, tokenizer.pattern, specials)


def _turns(messages):
    """(role marker, content) of each message, checked."""
    turns = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"message {i}: expected {{'role': one of {sorted(ROLES)}, 'content': str}}, got {message!r}")
        turns.append((ROLES[role], message["content"]))
    return turns


def render_chat(messages, add_generation_prompt=False):
    """The conversation as text, markers included (for display, and as a prompt for `tinyllm sample`)."""
    text = "".join(marker + content + END + SEPARATOR for marker, content in _turns(messages))
    return text + ASSISTANT if add_generation_prompt else text


def encode_chat(tokenizer, messages):
    """(ids, train_mask): the ids of render_chat(messages) and, for each, whether the model learns it
    (assistant content and the assistant's <|end|>). int64 and bool arrays of the same length.

    Each piece is encoded on its own, exactly as `tokenizer.encode(text, allowed_special="all")` cuts
    the text at the markers, so the ids are those of the rendered text.
    """
    ids, mask = [], []

    def add(piece_ids, learn):
        ids.extend(piece_ids)
        mask.extend([learn] * len(piece_ids))

    for marker, content in _turns(messages):
        learn = marker == ASSISTANT
        add([tokenizer.token_to_id(marker)], False)
        add(tokenizer.encode(content) + [tokenizer.token_to_id(END)], learn)
        add(tokenizer.encode(SEPARATOR), False)
    if None in ids:
        raise ValueError(f"the tokenizer lacks the chat tokens {CHAT_TOKENS}; call add_chat_tokens(tokenizer) first")
    return np.array(ids, dtype=np.int64), np.array(mask, dtype=bool)


def encode_prompt(tokenizer, messages):
    """The ids of the conversation so far and the generation prompt `<|assistant|>`: the model goes on
    from there with its reply, and stops at <|end|> (tokenizer.token_to_id(END))."""
    ids, _ = encode_chat(tokenizer, messages)
    return ids.tolist() + [tokenizer.token_to_id(ASSISTANT)]
