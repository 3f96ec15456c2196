"""Generation: the KV cache gives what recomputing the whole context gives, each step feeds one token,
and the sampling knobs (temperature, top-k, top-p, repetition penalty, stop tokens, seed) do what they say."""
import numpy as np
import pytest

import tinyllm
from tinyllm.generate import generate, sample_next
from tinyllm.models import GPT, GPTConfig, KVCache

GPT2_TINY = GPTConfig(vocab_size=40, block_size=12, n_layer=2, n_head=4, n_embd=32)
LLAMA_TINY = GPTConfig(vocab_size=40, block_size=12, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, mlp_hidden=48,
                       pos_encoding="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False)
PROMPT = np.array([[5, 1, 33, 7], [2, 2, 19, 0]])


def _model(config):
    model = GPT(config)
    with tinyllm.no_grad():
        for p in model.parameters():  # larger weights than GPT-2's init, so greedy choices are far from ties
            if p.ndim == 2:
                p.normal_(0.0, 0.3)
    return model


def _greedy_without_cache(model, ids, n):
    """nanoGPT's loop: the whole (cropped, for learned positions) context through the model every step."""
    window = model.config.block_size if model.config.pos_encoding == "learned" else None
    with tinyllm.no_grad():
        for _ in range(n):
            logits, _ = model(ids[:, -window:] if window else ids)
            ids = np.concatenate([ids, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    return ids


@pytest.mark.parametrize("config", [GPT2_TINY, LLAMA_TINY], ids=["gpt2", "llama"])
def test_cached_logits_equal_full_recomputation(config):
    model = _model(config)
    ids = np.random.default_rng(0).integers(0, 40, (2, 9))
    with tinyllm.no_grad():
        full, _ = model(ids)
        cache = KVCache()
        steps = [model(ids[:, :5], cache=cache)[0].data] + [model(ids[:, t:t + 1], cache=cache)[0].data for t in range(5, 9)]
    assert len(cache) == 9
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full.data, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [GPT2_TINY, LLAMA_TINY], ids=["gpt2", "llama"])
def test_greedy_with_cache_gives_the_tokens_of_full_recomputation(config):
    """12 new tokens after a prompt of 4 go past block_size = 12: learned positions crop, RoPE goes on."""
    model = _model(config)
    out = generate(model, PROMPT, max_new_tokens=12, temperature=0)
    expected = _greedy_without_cache(model, PROMPT, 12)
    np.testing.assert_array_equal(out.data, expected)
    assert len(set(expected[0, 4:].tolist())) > 2, "the test needs a model whose greedy output varies"


def test_each_step_feeds_one_token(monkeypatch):
    model = _model(LLAMA_TINY)
    fed = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, targets=None, cache=None: fed.append(idx.shape[1]) or forward(idx, targets, cache))
    generate(model, PROMPT, max_new_tokens=5, temperature=0)
    assert fed == [4, 1, 1, 1, 1]


@pytest.mark.parametrize("config", [GPT2_TINY, LLAMA_TINY], ids=["gpt2", "llama"])
def test_a_kept_cache_goes_on_as_a_fresh_generation_would(config, monkeypatch):
    """A second call, on the first's result plus 2 new tokens, feeds only what the cache lacks and gives
    the tokens a fresh call gives; its 5 new tokens go past block_size = 12."""
    model = _model(config)
    cache = KVCache()
    first = generate(model, PROMPT, max_new_tokens=3, temperature=0, cache=cache).data
    assert len(cache) == 6, "every token of the result but the last"
    follow_up = np.concatenate([first, [[3, 4], [5, 6]]], axis=1)
    fed = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda idx, targets=None, cache=None: fed.append(idx.shape[1]) or forward(idx, targets, cache))
    kept = generate(model, follow_up, max_new_tokens=5, temperature=0, cache=cache).data
    assert fed[0] == 3
    np.testing.assert_array_equal(kept, generate(model, follow_up, max_new_tokens=5, temperature=0).data)


def test_a_cache_that_does_not_fit_the_prompt_is_refused():
    model = _model(GPT2_TINY)
    cache = KVCache()
    out = generate(model, PROMPT, max_new_tokens=2, temperature=0, cache=cache).data
    with pytest.raises(ValueError, match="the cache holds 5 positions and the prompt 5 tokens"):
        generate(model, out[:, :5], 2, cache=cache)
    with pytest.raises(ValueError, match="the cache holds 2 rows and the prompt 1"):
        generate(model, out[0], 2, cache=cache)
    generate(model, out, 2, cache=cache)  # the tokens it lacks


def test_single_prompt_stream_stop_tokens_and_modes():
    model = _model(GPT2_TINY).train()
    free = generate(model, [5, 1, 33], max_new_tokens=6, temperature=0).tolist()
    stop = free[5]  # the third generated token
    streamed = []
    out = generate(model, tinyllm.tensor([5, 1, 33]), max_new_tokens=6, temperature=0, stop_tokens=[stop], stream=streamed.append)
    first_stop = free.index(stop, 3)
    assert out.tolist() == free[:first_stop + 1] and streamed == free[3:first_stop + 1]
    assert all(isinstance(t, int) for t in streamed)
    assert model.training and all(p.grad is None for p in model.parameters()) and not out.requires_grad


def test_finished_rows_are_padded_with_their_stop_token():
    model = _model(GPT2_TINY)
    free = generate(model, PROMPT, max_new_tokens=6, temperature=0).data
    stop = free[0, 4]  # row 0 stops at once
    out = generate(model, PROMPT, max_new_tokens=6, temperature=0, stop_tokens=[stop]).data
    row1_stops = [i for i in range(4, 10) if free[1, i] == stop]
    end = row1_stops[0] + 1 if row1_stops else 10
    assert out.shape[1] == end and (out[0, 4:] == stop).all()
    np.testing.assert_array_equal(out[1], free[1, :end])


def test_seed_makes_sampling_reproducible():
    model = _model(LLAMA_TINY)
    a = generate(model, PROMPT, max_new_tokens=8, seed=1).data
    assert (generate(model, PROMPT, max_new_tokens=8, seed=1).data == a).all()
    assert not (generate(model, PROMPT, max_new_tokens=8, seed=2).data == a).all()
    greedy = generate(model, PROMPT, max_new_tokens=8, temperature=0).data
    np.testing.assert_array_equal(generate(model, PROMPT, max_new_tokens=8, top_k=1, seed=3).data, greedy)
    np.testing.assert_array_equal(generate(model, PROMPT, max_new_tokens=8, top_p=1e-6, seed=3).data, greedy)


LOGITS = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))


def _frequencies(n=4000, **kw):
    rng = np.random.default_rng(0)
    draws = sample_next(np.repeat(LOGITS, n, axis=0), np.zeros((n, 1), np.int64), rng=rng, **kw)
    return np.bincount(draws, minlength=4) / n


def test_temperature_top_k_and_top_p_shape_the_distribution():
    np.testing.assert_allclose(_frequencies(), [0.5, 0.3, 0.15, 0.05], atol=0.03)
    hot = np.array([0.5, 0.3, 0.15, 0.05]) ** 0.5
    np.testing.assert_allclose(_frequencies(temperature=2.0), hot / hot.sum(), atol=0.03)
    np.testing.assert_allclose(_frequencies(top_k=2), [0.625, 0.375, 0, 0], atol=0.03)
    np.testing.assert_allclose(_frequencies(top_p=0.7), [0.625, 0.375, 0, 0], atol=0.03)  # 0.5 < 0.7 <= 0.8
    np.testing.assert_allclose(_frequencies(top_p=0.85), [0.5, 0.3, 0.15, 0] / np.float64(0.95), atol=0.03)


def test_repetition_penalty():
    logits = np.array([[2.0, 1.9, -1.0, -1.2]])
    assert sample_next(logits, np.array([[0]]), temperature=0)[0] == 0
    assert sample_next(logits, np.array([[0, 0]]), temperature=0, repetition_penalty=1.2)[0] == 1  # 2.0 / 1.2 < 1.9
    negative = np.array([[-1.0, -1.2]])
    assert sample_next(negative, np.array([[0]]), temperature=0, repetition_penalty=1.5)[0] == 1  # -1.0 * 1.5 < -1.2


def test_bad_arguments():
    model = _model(GPT2_TINY)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, [1, 2], 3, top_p=0)
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [], 3)
