"""Alignment data: the JSONL formats, errors that name the file, line and field, padding and the loader."""
import numpy as np
import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

from tinyllm.align.data import IGNORE, PAD_ID, ExampleLoader, encode_pair, pad_batch, read_conversations, read_pairs  # noqa: E402
from tinyllm.align.template import add_chat_tokens, encode_chat  # noqa: E402
from tinyllm.tokenizer import BPETokenizer  # noqa: E402


def write(tmp_path, text):
    path = tmp_path / "data.jsonl"
    path.write_text(text)
    return path


def test_chat_and_alpaca_lines_become_conversations(tmp_path):
    path = write(tmp_path, '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n\n'
                           '{"instruction": "add", "input": "2 3", "output": "5"}\n{"instruction": "say yes", "output": "yes"}\n')
    assert read_conversations(path) == [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [{"role": "user", "content": "add\n\n2 3"}, {"role": "assistant", "content": "5"}],
        [{"role": "user", "content": "say yes"}, {"role": "assistant", "content": "yes"}]]


def test_pairs_take_strings_or_message_lists(tmp_path):
    path = write(tmp_path, '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n'
                           '{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}], '
                           '"chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}\n')
    (p1, c1, r1), (p2, c2, r2) = read_pairs(path)
    assert p1 == [{"role": "user", "content": "2+2?"}] and c1 == [{"role": "assistant", "content": "4"}]
    assert p2[0]["role"] == "system" and c2 == [{"role": "assistant", "content": "a"}] and r2 == [{"role": "assistant", "content": "b"}]


@pytest.mark.parametrize("reader, text, message", [
    (read_conversations, '{"messages": []}\n{"messages": [{"role": "user"}]}\n',
     r"data.jsonl:1: field 'messages': expected at least one assistant message"),
    (read_conversations, '{"instruction": "a", "output": "b"}\n{"messages": [{"role": "user"}]}\n',
     r"data.jsonl:2: field 'messages', message 0: expected \{'role'"),
    (read_conversations, '{"instruction": "a", "output": "b"}\n\n{"instruction": "a", "output": 7}\n',
     r"data.jsonl:3: field 'output': expected a string, got int 7"),
    (read_conversations, '{"text": "a"}\n', r"data.jsonl:1: expected a 'messages' list or Alpaca .* got fields \['text'\]"),
    (read_conversations, '{"messages": [\n', r"data.jsonl:1: invalid JSON"),
    (read_pairs, '{"prompt": "a", "chosen": "b", "rejected": "c"}\n[1, 2]\n', r"data.jsonl:2: expected a JSON object, got list"),
    (read_pairs, '{"prompt": "a", "chosen": "b"}\n', r"data.jsonl:1: field 'rejected': expected a string or a list of messages, got nothing"),
])
def test_malformed_lines_name_the_file_line_and_field(tmp_path, reader, text, message):
    with pytest.raises(ValueError, match=message):
        reader(write(tmp_path, text))


def test_a_pair_trains_on_the_answer_only_and_batches_pad_on_the_right():
    tok = add_chat_tokens(BPETokenizer.train(["the king and the queen " * 30], 270))
    prompt = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "context"},
              {"role": "user", "content": "second"}]
    chosen, rejected = [{"role": "assistant", "content": "the king"}], [{"role": "assistant", "content": "no"}]
    (xc, yc), (xr, yr) = encode_pair(tok, prompt, chosen, rejected, max_len=64)
    ids, _ = encode_chat(tok, prompt + chosen)
    np.testing.assert_array_equal(xc, ids[:-1])
    learned = ids[1:][yc != IGNORE].tolist()
    assert tok.decode(learned) == "the king<|end|>"  # not "context", the prompt's own assistant turn
    inputs, targets = pad_batch([(xc, yc), (xr, yr)])
    assert inputs.shape == targets.shape == (2, max(len(xc), len(xr)))
    assert (inputs[1, len(xr):] == PAD_ID).all() and (targets[1, len(yr):] == IGNORE).all()
    np.testing.assert_array_equal(targets[1, :len(yr)], yr)


def test_the_loader_gives_each_example_once_an_epoch_in_batches_of_similar_length_and_resumes_from_its_step():
    lengths = np.random.default_rng(0).integers(5, 60, size=103)
    loader = ExampleLoader(lengths, 4, seed=3, pool=5)
    batches = [next(loader) for _ in range(2 * 25 + 3)]
    for epoch in (batches[:25], batches[25:50]):
        seen = np.concatenate(epoch)
        assert len(set(seen.tolist())) == 100 and seen.max() < 103
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 0.5 * np.mean([np.ptp(lengths[b]) for b in np.random.default_rng(1).permutation(100).reshape(25, 4)])
    assert not np.array_equal(np.concatenate(batches[:25]), np.concatenate(batches[25:50]))
    again = ExampleLoader(lengths, 4, seed=3, pool=5)
    again.load_state_dict({"seed": 3, "step": 27})
    np.testing.assert_array_equal(next(again), batches[27])
    with pytest.raises(ValueError, match="at least one batch"):
        ExampleLoader([3, 4], 4)
