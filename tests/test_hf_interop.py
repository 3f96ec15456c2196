"""Hugging Face interop: checkpoints written by `transformers` load and give its logits; ours load in
`transformers` and give ours; broken files and configs fail with errors that say what is wrong."""
import json
import os

import numpy as np
import pytest

import tinyllm
from tinyllm.models import GPT, GPTConfig
from tinyllm import checkpoint

torch = pytest.importorskip("torch")

IDS = np.array([[3, 17, 9, 0, 42, 5, 5, 61, 2], [60, 1, 33, 33, 7, 12, 40, 8, 19]])
GPT2_HF = dict(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4, n_inner=48, layer_norm_epsilon=1e-5,
               bos_token_id=0, eos_token_id=0)
LLAMA_HF = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=500.0, tie_word_embeddings=False)
OURS = {
    "gpt2": GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=32, mlp_hidden=48, tie_weights=True),
    "llama": GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, mlp_hidden=48,
                       pos_encoding="rope", rope_theta=500.0, norm="rmsnorm", norm_eps=1e-6, mlp="swiglu", bias=False, tie_weights=False),
}


@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_checkpoints(transformers, tmp_path_factory):
    """A tiny random HF GPT-2 and Llama (built here, nothing downloaded), each saved to a directory."""
    torch.manual_seed(0)
    models = {"gpt2": transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2_HF)),
              "llama": transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA_HF))}
    out = {}
    for name, model in models.items():
        with torch.no_grad():  # random norm weights, so a norm mapped to the wrong place shows
            for n, p in model.named_parameters():
                if "norm" in n or "ln_" in n:
                    p.uniform_(0.5, 1.5)
        directory = tmp_path_factory.mktemp(name)
        model.eval().save_pretrained(directory)
        out[name] = directory, model
    return out


def _hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor(ids)).logits.numpy()


def _our_logits(model, ids):
    with tinyllm.no_grad():
        return model(ids)[0].data


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_from_pretrained_gives_transformers_logits(hf_checkpoints, arch):
    directory, theirs = hf_checkpoints[arch]
    ours = GPT.from_pretrained(directory)
    assert ours.config == OURS[arch]
    np.testing.assert_allclose(_our_logits(ours, IDS), _hf_logits(theirs, IDS), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_save_pretrained_opens_in_transformers_with_the_same_logits(transformers, tmp_path, arch):
    ours = GPT(OURS[arch])
    with tinyllm.no_grad():
        for p in ours.parameters():  # not GPT-2's init, so zero biases and unit norms can't hide a mapping mistake
            p.normal_(0.0, 0.3)
    ours.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temporary files left
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    np.testing.assert_allclose(_hf_logits(theirs, IDS), _our_logits(ours, IDS), rtol=1e-4, atol=1e-5)
    again = GPT.from_pretrained(tmp_path)
    assert again.config == ours.config
    for name, value in ours.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name].data, value.data, err_msg=name)


def test_bfloat16_checkpoint_loads_as_float32(hf_checkpoints, tmp_path):
    _, theirs = hf_checkpoints["llama"]
    theirs.to(torch.bfloat16).save_pretrained(tmp_path)
    theirs.to(torch.float32)
    ours = GPT.from_pretrained(tmp_path)
    q = theirs.model.layers[0].self_attn.q_proj.weight.detach().to(torch.bfloat16).float().numpy()
    got = ours.transformer.h[0].attn.c_attn.weight.data
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[:32], q)


# ---------------------------------------------------------------------------------------------------
# errors


@pytest.fixture
def saved(tmp_path):
    GPT(OURS["llama"]).save_pretrained(tmp_path)
    return tmp_path


def _edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_missing_files(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        GPT.from_pretrained(saved)
    (saved / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_pretrained(saved)


def test_unknown_model_type(saved):
    _edit_config(saved, model_type="mistral")
    with pytest.raises(ValueError, match="model_type 'mistral' is not supported"):
        GPT.from_pretrained(saved)


def test_unsupported_rope_scaling(saved):
    _edit_config(saved, rope_parameters={"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0})
    with pytest.raises(ValueError, match="RoPE scaling"):
        GPT.from_pretrained(saved)


@pytest.mark.parametrize("damage", ["truncated", "corrupted_header"])
def test_damaged_safetensors(saved, damage):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else data[:8] + b"{not json" + data[17:])
    with pytest.raises(ValueError, match="model.safetensors: not a valid safetensors file"):
        GPT.from_pretrained(saved)


def test_config_that_does_not_fit_the_weights(saved):
    _edit_config(saved, intermediate_size=64)
    with pytest.raises(ValueError, match=r"'model.layers.0.mlp.gate_proj.weight' has shape \(48, 32\), but config.json implies \(64, 32\)"):
        GPT.from_pretrained(saved)


def test_missing_and_unexpected_tensors(saved):
    from safetensors.numpy import load_file, save_file
    path = str(saved / "model.safetensors")
    tensors = load_file(path)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = tensors.pop("model.layers.1.self_attn.k_proj.weight")[0]
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing tensors \['model.layers.1.self_attn.k_proj.weight'\], "
                                         r"unexpected tensors \['model.layers.0.self_attn.rotary_emb.inv_freq'\]"):
        GPT.from_pretrained(saved)


def test_config_without_a_hf_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="neither HF gpt2"):
        GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8, norm="rmsnorm")).save_pretrained(tmp_path)


def test_a_failed_save_leaves_the_previous_checkpoint(saved, monkeypatch):
    before = (saved / "model.safetensors").read_bytes()

    def crash(tensors, path, metadata=None):
        open(path, "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.safetensors.numpy, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        GPT(OURS["llama"]).save_pretrained(saved)
    assert (saved / "model.safetensors").read_bytes() == before
    assert sorted(os.listdir(saved)) == ["config.json", "model.safetensors"]


def test_openai_gpt2_layout_without_prefix_and_with_mask_buffers(tmp_path):
    """OpenAI's gpt2 files name tensors without "transformer." and store each layer's causal mask (attn.bias)."""
    from safetensors.numpy import load_file, save_file
    ours = GPT(OURS["gpt2"])
    ours.save_pretrained(tmp_path)
    path = str(tmp_path / "model.safetensors")
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(path).items()}
    tensors.update({f"h.{i}.attn.bias": np.tril(np.ones((1, 1, 32, 32), np.float32)) for i in range(2)})
    save_file(tensors, path, metadata={"format": "pt"})
    again = GPT.from_pretrained(tmp_path)
    np.testing.assert_array_equal(again.transformer.h[1].attn.c_attn.weight.data, ours.transformer.h[1].attn.c_attn.weight.data)
