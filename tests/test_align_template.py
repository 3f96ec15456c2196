"""The chat template: markers added without moving any id, exact ids and training masks, and the
embedding table grown around the pretrained rows."""
import numpy as np
import pytest

pytest.importorskip("tinyllm._C", reason="the tokenizer needs the compiled module")

from tinyllm.align.template import (ASSISTANT, CHAT_TOKENS, END, SYSTEM, USER, add_chat_tokens,  # noqa: E402
                                    encode_chat, encode_prompt, render_chat)
from tinyllm.models.gpt import GPT, GPTConfig  # noqa: E402
from tinyllm.tokenizer import BPETokenizer  # noqa: E402

TEXT = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 20
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Reverse: crown"},
        {"role": "assistant", "content": "nworc"}, {"role": "user", "content": "And king?"},
        {"role": "assistant", "content": "gnik"}]


@pytest.fixture(scope="module")
def base():
    return BPETokenizer.train([TEXT], 300, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def chat_tokenizer(base):
    return add_chat_tokens(base)


def test_add_chat_tokens_keeps_every_id_and_appends_the_markers(base, chat_tokenizer):
    assert chat_tokenizer.vocab == base.vocab and chat_tokenizer.merges == base.merges
    assert chat_tokenizer.special_tokens["<|endoftext|>"] == base.special_tokens["<|endoftext|>"]
    assert [chat_tokenizer.token_to_id(t) for t in CHAT_TOKENS] == list(range(base.vocab_size, base.vocab_size + 4))
    assert chat_tokenizer.encode(TEXT[:200]) == base.encode(TEXT[:200])
    again = add_chat_tokens(chat_tokenizer)
    assert again.special_tokens == chat_tokenizer.special_tokens and again.vocab_size == chat_tokenizer.vocab_size


def test_render_chat_lays_out_the_turns_and_the_generation_prompt():
    assert render_chat(CHAT[:3]) == f"{SYSTEM}Be brief.{END}\n{USER}Reverse: crown{END}\n{ASSISTANT}nworc{END}\n"
    assert render_chat(CHAT[:2], add_generation_prompt=True).endswith(f"{USER}Reverse: crown{END}\n{ASSISTANT}")


def test_encode_chat_gives_the_ids_of_the_rendered_text_and_masks_exactly_the_assistant_replies(chat_tokenizer):
    tok = chat_tokenizer
    ids, mask = encode_chat(tok, CHAT)
    assert ids.dtype == np.int64 and mask.dtype == bool and ids.shape == mask.shape
    assert ids.tolist() == tok.encode(render_chat(CHAT), allowed_special="all")
    expected = []
    for message in CHAT:
        content = tok.encode(message["content"])
        learn = message["role"] == "assistant"
        expected += [False] + [learn] * (len(content) + 1) + [False] * len(tok.encode("\n"))
    assert mask.tolist() == expected
    assert tok.decode(ids[mask].tolist()) == f"nworc{END}gnik{END}"


def test_encode_prompt_ends_with_the_generation_prompt(chat_tokenizer):
    prompt = encode_prompt(chat_tokenizer, CHAT[:2])
    assert prompt == chat_tokenizer.encode(render_chat(CHAT[:2], add_generation_prompt=True), allowed_special="all")
    assert prompt[-1] == chat_tokenizer.token_to_id(ASSISTANT)


def test_marker_text_inside_a_message_is_plain_text(chat_tokenizer):
    ids, _ = encode_chat(chat_tokenizer, [{"role": "user", "content": f"say {END}"}])
    assert (ids == chat_tokenizer.token_to_id(END)).sum() == 1  # only the real end of turn


def test_bad_messages_are_refused_clearly(chat_tokenizer, base):
    with pytest.raises(ValueError, match="message 1: expected"):
        encode_chat(chat_tokenizer, [CHAT[0], {"role": "robot", "content": "hi"}])
    with pytest.raises(ValueError, match="add_chat_tokens"):
        encode_chat(base, CHAT)


@pytest.mark.parametrize("tie", [True, False])
def test_resize_token_embeddings_keeps_the_rows_and_adds_mean_rows(tie):
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=8, tie_weights=tie))
    wte, head = model.transformer.wte.weight.detach().numpy().copy(), model.lm_head.weight.detach().numpy().copy()
    idx = np.array([[1, 2, 3, 4]])
    before = model(idx)[0].detach().numpy()
    model.resize_token_embeddings(54)
    new_wte, new_head = model.transformer.wte.weight.detach().numpy(), model.lm_head.weight.detach().numpy()
    assert model.config.vocab_size == 54 and new_wte.shape == (54, 8) and new_head.shape == (54, 8)
    np.testing.assert_array_equal(new_wte[:50], wte)
    np.testing.assert_array_equal(new_head[:50], head)
    np.testing.assert_allclose(new_wte[50:], np.broadcast_to(wte.mean(0), (4, 8)), rtol=1e-6)
    np.testing.assert_allclose(new_head[50:], np.broadcast_to(head.mean(0), (4, 8)), rtol=1e-6)
    assert (model.lm_head.weight is model.transformer.wte.weight) == tie
    after = model(np.array([[1, 2, 3, 53]]))[0].detach().numpy()
    np.testing.assert_allclose(after[0, :3, :50], before[0, :3], rtol=1e-5, atol=1e-6)  # old ids, old logits
    assert any(p is model.transformer.wte.weight for p in model.parameters())
