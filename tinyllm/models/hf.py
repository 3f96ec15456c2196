"""Hugging Face checkpoints: a directory with config.json and model.safetensors, model_type gpt2 or llama.

Our parameter names are HF GPT-2's (with the "transformer." prefix), so for gpt2 the map is the
identity, except that GPT-2's Conv1D layers store their weight as (in, out), the transpose of a
Linear's. For llama, our fused matrices are HF's stacked along their first axis:

    transformer.h.{i}.attn.c_attn.weight = [q_proj; k_proj; v_proj]   (n_head, n_kv_head, n_kv_head heads)
    transformer.h.{i}.mlp.c_fc.weight    = [gate_proj; up_proj]
    attn.c_proj = o_proj, mlp.c_proj = down_proj, ln_1 = input_layernorm, ln_2 = post_attention_layernorm,
    transformer.wte = model.embed_tokens, transformer.ln_f = model.norm.

HF stores Llama's q_proj and k_proj rows already permuted for the "rotate_half" RoPE layout (feature i
pairs with i + head_dim/2), the layout of our rope kernel, so they load unchanged.

Weights are read and written with the safetensors package: a plain header and raw little-endian
arrays, nothing unpickled. float16 and bfloat16 (ml_dtypes) tensors are converted to float32.
This module knows file formats and names only; gpt.py builds the model.
"""
import json
import os

import numpy as np

from ..atomic import atomic_write_json
from ..checkpoint import load_tensors, save_tensors

CONFIG, WEIGHTS = "config.json", "model.safetensors"
# Buffers that old GPT-2 checkpoints store next to the weights: the causal mask, not parameters.
_GPT2_BUFFERS = (".attn.bias", ".attn.masked_bias")


def _require(condition, path, message):
    if not condition:
        raise ValueError(f"{path}: {message}")


def read_config(directory):
    """GPTConfig's fields from a Hugging Face config.json of model_type gpt2 or llama."""
    path = os.path.join(directory, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: a Hugging Face checkpoint directory holds {CONFIG} and {WEIGHTS}")
    try:
        with open(path) as f:
            hf = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    model_type = hf.get("model_type")
    if model_type == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        _require(act in ("gelu_new", "gelu_pytorch_tanh"), path, f"activation_function {act!r} is not supported (tinyllm's GPT-2 MLP uses the tanh GELU, gelu_new)")
        _require(hf.get("scale_attn_weights", True) and not hf.get("scale_attn_by_inverse_layer_idx", False), path,
                 "only attention scaled by 1/sqrt(head_dim) is supported (scale_attn_weights true, scale_attn_by_inverse_layer_idx false)")
        return dict(vocab_size=hf["vocab_size"], block_size=hf["n_positions"], n_layer=hf["n_layer"], n_head=hf["n_head"],
                    n_embd=hf["n_embd"], mlp_hidden=hf.get("n_inner") or 4 * hf["n_embd"], pos_encoding="learned",
                    norm="layernorm", norm_eps=hf.get("layer_norm_epsilon", 1e-5), mlp="gelu", bias=True,
                    tie_weights=hf.get("tie_word_embeddings", True))
    if model_type == "llama":
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}  # transformers >= 5 | older
        _require(rope.get("rope_type", rope.get("type", "default")) == "default", path, f"RoPE scaling {rope} is not supported")
        _require(hf.get("hidden_act", "silu") == "silu", path, f"hidden_act {hf.get('hidden_act')!r} is not supported (only silu)")
        _require(not hf.get("attention_bias") and not hf.get("mlp_bias"), path, "attention_bias and mlp_bias are not supported")
        n_head = hf["num_attention_heads"]
        _require(hf.get("head_dim") in (None, hf["hidden_size"] // n_head), path, "head_dim must be hidden_size / num_attention_heads")
        return dict(vocab_size=hf["vocab_size"], block_size=hf["max_position_embeddings"], n_layer=hf["num_hidden_layers"],
                    n_head=n_head, n_kv_head=hf.get("num_key_value_heads") or n_head, n_embd=hf["hidden_size"],
                    mlp_hidden=hf["intermediate_size"], pos_encoding="rope", rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
                    norm="rmsnorm", norm_eps=hf.get("rms_norm_eps", 1e-6), mlp="swiglu", bias=False,
                    tie_weights=hf.get("tie_word_embeddings", False))
    raise ValueError(f"{path}: model_type {model_type!r} is not supported; tinyllm reads 'gpt2' and 'llama'")


def _model_type(config):
    """The HF model type whose architecture this config is, or a clear error."""
    if (config.pos_encoding, config.norm, config.mlp, config.bias, config.n_kv_head) == ("learned", "layernorm", "gelu", True, config.n_head):
        return "gpt2"
    if (config.pos_encoding, config.norm, config.mlp, config.bias) == ("rope", "rmsnorm", "swiglu", False):
        return "llama"
    raise ValueError("this GPTConfig is neither HF gpt2 (learned positions, layernorm, gelu, bias, n_kv_head = n_head) "
                     "nor llama (rope, rmsnorm, swiglu, no bias), so it has no Hugging Face format")


def _name_map(config):
    """(our name, [(HF name, rows), ...], transposed) for every tensor of the checkpoint: our tensor is
    the HF ones stacked along axis 0 (rows each), each transposed first when HF stores it as (in, out)."""
    c, hd = config, config.head_dim
    if _model_type(config) == "gpt2":
        names = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias"]
        for i in range(c.n_layer):
            names += [f"transformer.h.{i}.{m}.{p}" for m in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj")
                      for p in ("weight", "bias")]
        if not c.tie_weights:
            names.append("lm_head.weight")
        conv1d = lambda n: n.endswith("weight") and (".attn." in n or ".mlp." in n)
        return [(n, [(n, None)], conv1d(n)) for n in names]
    entries = [("transformer.wte.weight", [("model.embed_tokens.weight", None)], False),
               ("transformer.ln_f.weight", [("model.norm.weight", None)], False)]
    for i in range(c.n_layer):
        ours, theirs = f"transformer.h.{i}.", f"model.layers.{i}."
        attn, mlp = theirs + "self_attn.", theirs + "mlp."
        entries += [
            (ours + "ln_1.weight", [(theirs + "input_layernorm.weight", None)], False),
            (ours + "attn.c_attn.weight", [(attn + "q_proj.weight", c.n_head * hd), (attn + "k_proj.weight", c.n_kv_head * hd),
                                           (attn + "v_proj.weight", c.n_kv_head * hd)], False),
            (ours + "attn.c_proj.weight", [(attn + "o_proj.weight", None)], False),
            (ours + "ln_2.weight", [(theirs + "post_attention_layernorm.weight", None)], False),
            (ours + "mlp.c_fc.weight", [(mlp + "gate_proj.weight", c.mlp_hidden), (mlp + "up_proj.weight", c.mlp_hidden)], False),
            (ours + "mlp.c_proj.weight", [(mlp + "down_proj.weight", None)], False),
        ]
    if not c.tie_weights:
        entries.append(("lm_head.weight", [("lm_head.weight", None)], False))
    return entries


def _read_safetensors(path):
    """name -> float32 array of every tensor in a safetensors file."""
    return {name: array.astype(np.float32) for name, array in load_tensors(path).items()}


def read_weights(directory, config, shapes):
    """Our state dict (float32 arrays) from model.safetensors, checked name by name against the model's
    parameter shapes (our name -> shape). Missing, unexpected or misshapen tensors are errors."""
    path = os.path.join(directory, WEIGHTS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (tinyllm reads single-file safetensors checkpoints, not sharded or .bin ones)")
    tensors = _read_safetensors(path)
    bare = _model_type(config) == "gpt2" and "wte.weight" in tensors  # OpenAI's GPT-2 files have no "transformer." prefix
    state, used, missing = {}, set(), []
    for ours, parts, transposed in _name_map(config):
        arrays = []
        for name, rows in parts:
            stored = name.removeprefix("transformer.") if bare else name
            if stored not in tensors:
                missing.append(stored)
                continue
            shape = shapes[ours] if rows is None else (rows, *shapes[ours][1:])
            expected = shape[::-1] if transposed else shape
            if tensors[stored].shape != tuple(expected):
                raise ValueError(f"{path}: tensor {stored!r} has shape {tensors[stored].shape}, but {CONFIG} implies {tuple(expected)}")
            used.add(stored)
            arrays.append(tensors[stored].T if transposed else tensors[stored])
        if len(arrays) == len(parts):
            state[ours] = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    ignorable = lambda n: n.endswith(_GPT2_BUFFERS) or (config.tie_weights and n == "lm_head.weight")
    unexpected = sorted(n for n in tensors if n not in used and not ignorable(n))
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {CONFIG}: missing tensors {missing}, unexpected tensors {unexpected}")
    if config.tie_weights:
        state["lm_head.weight"] = state["transformer.wte.weight"]
    return state


def _hf_config(config):
    c = config
    if _model_type(c) == "gpt2":
        return dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", vocab_size=c.vocab_size, n_positions=c.block_size,
                    n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head, n_inner=c.mlp_hidden, activation_function="gelu_new",
                    layer_norm_epsilon=c.norm_eps, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
                    tie_word_embeddings=c.tie_weights, dtype="float32")
    return dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=c.vocab_size, hidden_size=c.n_embd,
                intermediate_size=c.mlp_hidden, num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
                num_key_value_heads=c.n_kv_head, head_dim=c.head_dim, max_position_embeddings=c.block_size, rms_norm_eps=c.norm_eps,
                rope_theta=c.rope_theta, rope_parameters=dict(rope_type="default", rope_theta=c.rope_theta), hidden_act="silu",
                attention_bias=False, mlp_bias=False, attention_dropout=c.dropout, tie_word_embeddings=c.tie_weights, dtype="float32")


def write(directory, config, state):
    """config.json and model.safetensors in HF's format from our config and state dict (name -> array)."""
    tensors = {}
    for ours, parts, transposed in _name_map(config):
        offsets = np.cumsum([rows for _, rows in parts[:-1]], dtype=int)
        for (name, _), array in zip(parts, np.split(state[ours], offsets)):
            tensors[name] = np.ascontiguousarray(array.T if transposed else array, dtype=np.float32)
    os.makedirs(directory, exist_ok=True)
    save_tensors(os.path.join(directory, WEIGHTS), tensors, metadata={"format": "pt"})
    atomic_write_json(os.path.join(directory, CONFIG), _hf_config(config))
