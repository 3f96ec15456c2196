"""Chat: a session's cached turns give what generating the whole conversation afresh gives, /reset and
/system start over, old turns make room in a short context, and the REPL and `tinyllm sample --chat`
work from a run directory."""
import dataclasses
import io
import json
import sys

import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

import tinyllm  # noqa: E402
from tinyllm import checkpoint, cli  # noqa: E402
from tinyllm.align import chat  # noqa: E402
from tinyllm.align.chat import ChatSession, chat_loop  # noqa: E402
from tinyllm.align.template import END, add_chat_tokens, encode_chat, encode_prompt  # noqa: E402
from tinyllm.generate import generate  # noqa: E402
from tinyllm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinyllm.tokenizer import BPETokenizer  # noqa: E402

TEXT = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 20
SYSTEM = {"role": "system", "content": "Be brief."}


@pytest.fixture(scope="module")
def tokenizer():
    return add_chat_tokens(BPETokenizer.train([TEXT], 300, special_tokens=["<|endoftext|>"]))


def _model(tokenizer, **config):
    """A tiny random GPT with weights large enough that its greedy replies vary."""
    model = GPT(GPTConfig(**{**dict(vocab_size=tokenizer.vocab_size, block_size=256, n_layer=2, n_head=2, n_embd=16),
                             **config}))
    with tinyllm.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.5)
    return model


def _fed(model, monkeypatch):
    """The number of tokens of each forward call, recorded."""
    fed, forward = [], model.forward
    monkeypatch.setattr(model, "forward", lambda idx, targets=None, cache=None: fed.append(idx.shape[1]) or forward(idx, targets, cache))
    return fed


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_each_turn_feeds_only_the_new_tokens_and_replies_as_a_fresh_generation(tokenizer, pos_encoding, monkeypatch):
    model = _model(tokenizer, pos_encoding=pos_encoding)
    session = ChatSession(model, tokenizer, system="Be brief.", max_new_tokens=6, temperature=0)
    fed = _fed(model, monkeypatch)
    replies = []
    for turn, text in enumerate(["to be or not", "that is the question", "whether 'tis nobler"]):
        before, calls, cached = list(session.ids), len(fed), len(session.cache)
        prompt = before + encode_prompt(tokenizer, [{"role": "user", "content": text}])
        replies.append(session.reply(text))
        turn_fed = fed[calls:]
        fresh = generate(model, prompt, 6, temperature=0, stop_tokens=(tokenizer.token_to_id(END),)).tolist()
        assert session.ids[:len(fresh)] == fresh, f"turn {turn}: the cached reply differs from a fresh one"
        assert turn_fed[0] == len(prompt) - cached and set(turn_fed[1:]) == {1}
        # at first nothing is cached, not even the system message; later what the cache lacks of the
        # last turn is its reply's last token (if not <|end|>), <|end|> and "\n"
        assert cached == 0 if turn == 0 else len(before) - cached in (2, 3)
    assert [m["role"] for m in session.messages] == ["system"] + ["user", "assistant"] * 3
    assert [m["content"] for m in session.messages[2::2]] == replies and len(set(replies)) > 1


def test_reset_keeps_the_system_message_and_set_system_replaces_it(tokenizer):
    session = ChatSession(_model(tokenizer), tokenizer, system="Be brief.", max_new_tokens=4, temperature=0)
    first = session.reply("to be")
    session.reply("or not")
    session.reset()
    assert session.messages == [SYSTEM] and len(session.cache) == 0
    assert session.ids == encode_chat(tokenizer, [SYSTEM])[0].tolist()
    assert session.reply("to be") == first, "a reset conversation replies as a new one"
    session.set_system("Be kind.")
    assert session.messages == [{"role": "system", "content": "Be kind."}] and len(session.cache) == 0
    session.set_system(None)
    assert session.messages == [] and session.ids == []


def test_with_learned_positions_the_oldest_exchanges_make_room(tokenizer, monkeypatch):
    """block_size 48, replies of up to 8 tokens: each prompt leaves 8 positions free, the oldest
    exchanges go (the system message stays), and each reply is what a fresh generation from the
    prompt gives."""
    model = _model(tokenizer, block_size=48)
    session = ChatSession(model, tokenizer, system="Be brief.", max_new_tokens=8, temperature=0)
    prompts = []
    monkeypatch.setattr(chat, "generate", lambda model, prompt, *args, **kw: prompts.append(prompt) or generate(model, prompt, *args, **kw))
    for text in ["to be or not to be", "that is the question", "whether 'tis nobler", "in the mind to suffer"]:
        reply = session.reply(text)
        assert len(prompts[-1]) <= 48 - 8 and session.messages[0] == SYSTEM
        fresh = generate(model, prompts[-1], 8, temperature=0, stop_tokens=(tokenizer.token_to_id(END),)).tolist()
        assert tokenizer.decode(fresh[len(prompts[-1]):]).removesuffix(END) == reply
    assert len(session.messages) < 1 + 2 * 4, "some exchanges were dropped"
    assert session.messages[-2] == {"role": "user", "content": "in the mind to suffer"}


def test_repl_with_a_fake_stdin(tokenizer, monkeypatch):
    model = _model(tokenizer)
    session = ChatSession(model, tokenizer, max_new_tokens=5, temperature=0)
    stdin = io.StringIO("to be\\\nor not\n\n/system Be brief.\nor not\n/reset\n/frobnicate\n/quit\nnever read\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    asked, reply = [], session.reply
    monkeypatch.setattr(session, "reply", lambda text, stream=None: asked.append(text) or reply(text, stream))
    out = io.StringIO()
    chat_loop(session, out=out)
    expected = ChatSession(model, tokenizer, max_new_tokens=5, temperature=0)
    first = expected.reply("to be\nor not")  # a line that ends with a backslash goes on
    expected.set_system("Be brief.")
    second = expected.reply("or not")
    text = out.getvalue()
    assert asked == ["to be\nor not", "or not"]
    assert f"bot> {first}\n" in text and f"bot> {second}\n" in text and text.count("bot> ") == 2
    assert "system message: Be brief." in text and "(the conversation is forgotten)" in text
    assert "unknown command /frobnicate" in text and stdin.read() == "never read\n"
    assert session.messages == [SYSTEM], "/reset kept only the system message"


def test_ctrl_c_stops_a_reply_and_the_turn_is_forgotten(tokenizer):
    model = _model(tokenizer)
    session, expected = (ChatSession(model, tokenizer, max_new_tokens=6, temperature=0) for _ in range(2))
    session.reply("to be")
    expected.reply("to be")

    def interrupt(token):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.reply("or not", stream=interrupt)
    assert session.messages == expected.messages and len(session.cache) == 0
    assert session.reply("or not") == expected.reply("or not") and session.ids == expected.ids


def test_repl_ctrl_c_drops_the_typed_line_and_ctrl_d_leaves(tokenizer):
    session = ChatSession(_model(tokenizer), tokenizer, max_new_tokens=3, temperature=0)
    inputs = iter([KeyboardInterrupt, "to be", EOFError])

    def read(prompt):
        item = next(inputs)
        if isinstance(item, type):
            raise item
        return item

    out = io.StringIO()
    chat_loop(session, read=read, out=out)
    assert [m["content"] for m in session.messages[::2]] == ["to be"] and out.getvalue().count("bot> ") == 1


@pytest.fixture(scope="module")
def chat_run(tokenizer, tmp_path_factory):
    """A run directory as tinyllm sft leaves it: config.json, a tokenizer with the chat markers, a checkpoint."""
    run = tmp_path_factory.mktemp("run")
    model = _model(tokenizer)
    (run / "config.json").write_text(json.dumps({"model": dataclasses.asdict(model.config)}))
    tokenizer.save(run / "tokenizer.json")
    checkpoint.save_checkpoint(run, 1, model)
    return run, model


def test_chat_command_streams_replies_from_a_run(chat_run, tokenizer, monkeypatch, capsys):
    run, model = chat_run
    monkeypatch.setattr(sys, "stdin", io.StringIO("to be\nor not\n"))
    assert cli.main(["chat", "--run", str(run), "--temperature", "0", "--max-new-tokens", "5"]) == 0
    expected = ChatSession(model, tokenizer, max_new_tokens=5, temperature=0)
    replies = [expected.reply("to be"), expected.reply("or not")]
    assert f"bot> {replies[0]}\n" in capsys.readouterr().out.replace("you> ", "")
    assert len(set(replies)) == 2


def test_sample_chat_lays_the_prompt_out_with_the_template(chat_run, tokenizer, capsys):
    run, model = chat_run
    assert cli.main(["sample", "--run", str(run), "--chat", "--prompt", "to be", "--temperature", "0", "--max-new-tokens", "5"]) == 0
    prompt = encode_prompt(tokenizer, [{"role": "user", "content": "to be"}])
    reply = generate(model, prompt, 5, temperature=0, stop_tokens=(tokenizer.token_to_id(END),)).tolist()[len(prompt):]
    reply = reply[:-1] if reply[-1] == tokenizer.token_to_id(END) else reply
    assert capsys.readouterr().out == f"<|user|>to be<|end|>\n<|assistant|>{tokenizer.decode(reply)}\n"


def test_chat_refuses_a_run_without_the_chat_markers(tmp_path, capsys):
    tokenizer = BPETokenizer.train([TEXT], 300, special_tokens=["<|endoftext|>"])
    model = _model(tokenizer)
    (tmp_path / "config.json").write_text(json.dumps({"model": dataclasses.asdict(model.config)}))
    tokenizer.save(tmp_path / "tokenizer.json")
    checkpoint.save_checkpoint(tmp_path, 1, model)
    assert cli.main(["chat", "--run", str(tmp_path)]) == 1
    assert "its tokenizer has no chat markers" in capsys.readouterr().err
