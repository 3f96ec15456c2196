"""Pretraining loop: from token shards to a trained GPT, resumable to the exact step.

One step = `grad_accum` micro-batches of (batch_size, block_size) tokens, each loss divided by
grad_accum before backward so the gradients add up to the mean; then the gradient norm is clipped,
AdamW steps with the scheduled learning rate (linear warmup, cosine decay), and the step is logged.
With float16 the loss is scaled up before backward and a step with inf/NaN gradients is skipped.

`Trainer` holds what every training run shares (the step above, checkpoints, exact resume) and `fit`
is the loop (evaluate, log, checkpoint); pretraining's `Run` here, and SFT and DPO in tinyllm.align,
are Trainers that say only how a step's loss is computed and how they are evaluated.

`--device cuda` trains on the GPU (pretraining, SFT and DPO alike): the model and each batch live
there, and the checkpoints are copied to the host, so they are the same files a CPU run writes. Dropout
masks come from a counter-based stream whose state is in every checkpoint (random.py), so a run with
dropout resumes exactly on either device. `--cuda-graph` (pretraining) replays each step on the GPU from
a CUDA graph (tinyllm.cuda_graph), the same kernels on the same data without Python in between.

A run directory holds everything about a run:

    config.json        the resolved configuration (a run is restarted from it)
    tokenizer.json     the tokenizer the data was made with (for sampling)
    metrics.jsonl      one JSON line per step and per evaluation
    loss.png           train (blue) and validation (red) loss against step
    checkpoints/       see checkpoint.py; the newest one is resumed from automatically
"""
import dataclasses
import json
import math
import pathlib
import time

import numpy as np

from . import amp, checkpoint, cuda_graph, random
from .atomic import atomic_write_json, atomic_write_text
from .autograd import no_grad
from .backend.array import usable_device
from .creation import tensor
from .data.loader import TrainLoader, eval_batches
from .data.prepare import split_shards
from .models.gpt import GPT, GPTConfig
from .tokenizer import BPETokenizer
from .nn.utils import clip_grad_norm_
from .optim.lr_schedule import warmup_cosine
from .plot import plot_curves


@dataclasses.dataclass(kw_only=True)
class LoopConfig:
    """What every training loop (pretraining, SFT, DPO) is configured by: steps, AdamW and its
    schedule, evaluation and checkpoints."""
    out: str = "runs/default"          # the run directory
    batch_size: int = 16
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_interval: int = 200
    eval_batches: int = 20             # at most this many validation batches per evaluation
    checkpoint_interval: int = 500
    keep_checkpoints: int = 2          # the newest this many checkpoints stay on disk
    dtype: str = "float32"             # float32, or bfloat16/float16 mixed precision (float32 master weights)
    device: str = "cpu"                # cpu, or cuda: an NVIDIA GPU (CuPy and our CUDA kernels)
    seed: int = 1337
    log_interval: int = 10

    @classmethod
    def from_dict(cls, values, where="config"):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclasses.dataclass(kw_only=True)
class TrainConfig(LoopConfig):
    data: str                          # a folder made by `tinyllm data prepare`
    model: str = "small"               # a preset of tinyllm.models.gpt
    model_overrides: dict = dataclasses.field(default_factory=dict)  # GPTConfig fields to change
    tokens_per_step: int = 0           # 0: one micro-batch per step; else accumulate up to this many tokens
    cuda_graph: bool = False           # on the GPU: replay each step from a CUDA graph (tinyllm.cuda_graph)


def load_config_file(path):
    """Training options from a TOML or JSON file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            import tomllib
            return tomllib.loads(text)
        return json.loads(text)
    except Exception as err:
        raise ValueError(f"{path}: can't parse the config file: {err}") from None


class Trainer:
    """What the training runs share (pretraining here, SFT and DPO in tinyllm.align): the run
    directory, the optimizer step with clipping, the schedule and the loss scaler, checkpoints and
    exact resume. A subclass sets model, model_config, tokenizer, optimizer and loader (anything with
    state_dict / load_state_dict) and defines forward_backward, validation_metrics and describe."""

    section = "train"  # the key of the training options in config.json

    def __init__(self, config):
        self.config = config
        self.dir = pathlib.Path(config.out)
        self.device = usable_device(config.device)  # the subclass puts its model(s) there; checked now, not at the first step
        self.scaler = amp.GradScaler(enabled=config.dtype == "float16")
        self.step = 0

    def write_run_files(self):
        """The resolved configuration and the tokenizer, saved with the run."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(self.dir / "tokenizer.json")
        atomic_write_json(self.dir / "config.json", {self.section: dataclasses.asdict(self.config),
                                                     "model": dataclasses.asdict(self.model_config)})

    # ------------------------------------------------------------------ state
    def save(self):
        extra = {"loader": self.loader.state_dict(), "rng": _jsonable(random.get_rng_state()),
                 "scaler": self.scaler.state_dict()}
        checkpoint.save_checkpoint(self.dir, self.step, self.model, self.optimizer, extra, keep=self.config.keep_checkpoints)

    def resume(self):
        """Continue from the newest checkpoint, if any; returns True when it did."""
        folder = checkpoint.latest_checkpoint(self.dir)
        if folder is None:
            return False
        self.step, extra = checkpoint.load_checkpoint(folder, self.model, self.optimizer)
        self.loader.load_state_dict(extra["loader"])
        random.set_rng_state(extra["rng"])
        self.scaler.load_state_dict(extra["scaler"])
        _truncate_metrics(self.dir / "metrics.jsonl", self.step)
        return True

    # ------------------------------------------------------------------ work
    def on_device(self, ids):
        """A batch of token ids (a NumPy array from a loader) as a Tensor on the run's device."""
        return tensor(ids, device=self.device)

    def scheduled_lr(self):
        """Set this step's learning rate (linear warmup, cosine decay) in every param group; returns it."""
        cfg = self.config
        lr = warmup_cosine(self.step, cfg.lr, cfg.warmup_steps, cfg.max_steps, cfg.min_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def train_step(self):
        """One optimizer step; returns its metrics (forward_backward's, then lr, grad_norm, skipped)."""
        cfg = self.config
        lr = self.scheduled_lr()
        row = self.forward_backward()
        self.scaler.unscale_(self.optimizer)
        norm = float(clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
        stepped = self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad()
        self.step += 1
        return {"step": self.step, **row, "lr": lr, "grad_norm": norm, "skipped": not stepped}

    def forward_backward(self):
        """Gradients of this step's loss, left in .grad (scaled by self.scaler); returns
        {"loss": float, "tokens": tokens processed, ...any other metric of the step}."""
        raise NotImplementedError

    def validation_metrics(self):
        """{"val_loss": float, ...} on (part of) the validation data."""
        raise NotImplementedError

    def describe(self):
        """One line about the model and the step, logged at the start."""
        raise NotImplementedError


class Run(Trainer):
    """A pretraining run's model, optimizer, data and bookkeeping, built from a TrainConfig."""

    def __init__(self, config):
        super().__init__(config)
        self.data = pathlib.Path(config.data)
        self.train_shards, self.val_shards = split_shards(self.data, "train"), split_shards(self.data, "val")
        self.tokenizer = BPETokenizer.from_file(self.data / "tokenizer.json")
        random.manual_seed(config.seed)
        overrides = {"vocab_size": self.tokenizer.vocab_size, **config.model_overrides}
        self.model_config = GPTConfig.from_preset(config.model, **overrides)
        self.model = GPT(self.model_config).to(self.device)
        self.block_size = self.model_config.block_size
        micro_tokens = config.batch_size * self.block_size
        self.grad_accum = max(1, config.tokens_per_step // micro_tokens) if config.tokens_per_step else 1
        if config.cuda_graph and (self.device != "cuda" or config.dtype == "float16"):
            raise ValueError(f"cuda_graph needs device cuda and dtype float32 or bfloat16, got device {config.device} and "
                             f"dtype {config.dtype} (float16's loss scaler decides on the host whether to skip a step)")
        self.optimizer = self.model.configure_optimizers(config.weight_decay, config.lr, (config.beta1, config.beta2),
                                                         capturable=config.cuda_graph)
        self.loader = TrainLoader(self.train_shards, config.batch_size, self.block_size, seed=config.seed)
        self.windows = None  # with cuda_graph: the step's input buffer on the GPU, refilled in place
        self.graphed_step = None

    @classmethod
    def open(cls, run_dir, device="cpu"):
        """The Run saved in run_dir, restored to its newest checkpoint, on device (wherever it was trained)."""
        config_file = pathlib.Path(run_dir) / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{run_dir}: not a training run (no config.json)")
        saved = json.loads(config_file.read_text())["train"]
        config = TrainConfig.from_dict({**saved, "out": str(run_dir), "device": device, "cuda_graph": False},
                                       where=str(config_file))
        run = cls(config)
        if not run.resume():
            raise ValueError(f"{run_dir}: the run has no checkpoint yet")
        return run

    def describe(self):
        cfg = self.config
        return (f"model: {cfg.model} ({self.model.num_parameters():,} parameters), "
                f"{self.grad_accum * cfg.batch_size * self.block_size:,} tokens per step "
                f"({self.grad_accum} x {cfg.batch_size} x {self.block_size}), {cfg.max_steps} steps, dtype {cfg.dtype}")

    def train_step(self):
        if not self.config.cuda_graph:
            return super().train_step()
        lr = self.scheduled_lr()
        windows = self.next_windows()
        if self.windows is None:  # the first step after a start or resume runs eagerly: it allocates the optimizer state
            self.windows = self.on_device(windows)
            loss, norm = self.step_on_windows()
        else:
            self.windows.data.set(windows)
            if self.graphed_step is None:
                self.graphed_step = cuda_graph.capture(self.step_on_windows, warmup=0, optimizers=[self.optimizer])
            loss, norm = self.graphed_step()
        self.step += 1
        return {"step": self.step, "loss": loss.item(), "tokens": windows[:, :, 1:].size, "lr": lr,
                "grad_norm": norm.item(), "skipped": False}

    def step_on_windows(self):
        """The whole step on the batch in self.windows, with no host read (what the CUDA graph records):
        returns the mean loss and the gradient norm before clipping, both on the device."""
        self.optimizer.zero_grad()
        loss = self.accumulate_gradients(self.windows)
        norm = clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return loss, norm

    def next_windows(self):
        """The step's grad_accum micro-batches of random windows: (grad_accum, batch, block_size + 1) ids."""
        return np.stack([next(self.loader) for _ in range(self.grad_accum)])

    def forward_backward(self):
        """grad_accum micro-batches of random windows, each loss divided by grad_accum."""
        windows = self.next_windows()
        loss = self.accumulate_gradients(self.on_device(windows))
        return {"loss": loss.item(), "tokens": windows[:, :, 1:].size}

    def accumulate_gradients(self, windows):
        """Backward of each micro-batch's loss (windows: (grad_accum, batch, block_size + 1) ids) divided
        by grad_accum, scaled by the loss scaler; returns their mean loss, a device scalar (no host read)."""
        loss_sum = 0.0
        for window in windows:
            with amp.autocast(self.config.dtype):
                _, loss = self.model(window[:, :-1], window[:, 1:])
            self.scaler.scale(loss / self.grad_accum).backward()
            loss_sum = loss_sum + loss.detach()
        return loss_sum / self.grad_accum

    def validation_metrics(self):
        return {"val_loss": self.evaluate(self.config.eval_batches)}

    @no_grad()
    def evaluate(self, max_batches=None, with_bytes=False):
        """Mean validation loss per token (nats) over up to max_batches batches (all when None).

        with_bytes: also return the UTF-8 bytes the predicted tokens stand for, to turn the loss into
        bits per byte (special tokens count as no bytes).
        """
        self.model.eval()
        total, count, n_bytes = 0.0, 0, 0
        token_bytes = np.array([len(self.tokenizer.decode_bytes([i])) for i in range(self.tokenizer.vocab_size)]) if with_bytes else None
        batches = eval_batches(self.val_shards, self.config.batch_size, self.block_size)
        for i, window in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            if with_bytes:
                n_bytes += int(token_bytes[window[:, 1:]].sum())
            window = self.on_device(window)
            with amp.autocast(self.config.dtype):
                _, loss = self.model(window[:, :-1], window[:, 1:])
            n = window[:, 1:].numel()
            total, count = total + loss.item() * n, count + n
        self.model.train()
        if count == 0:
            raise ValueError(f"the validation shards hold fewer than block_size + 1 = {self.block_size + 1} tokens")
        return (total / count, total, n_bytes) if with_bytes else total / count


def fit(run, log=print, progress=True):
    """Train a Trainer from its newest checkpoint (if any) to config.max_steps, evaluating, logging to
    metrics.jsonl and checkpointing on the way; return the last validation metrics."""
    if run.resume():
        log(f"resumed {run.dir} at step {run.step}")
    run.write_run_files()
    cfg = run.config
    log(run.describe())
    bar = _progress_bar(cfg.max_steps, run.step, progress)
    validation = {}
    with open(run.dir / "metrics.jsonl", "a", encoding="utf-8") as metrics:
        while run.step < cfg.max_steps:
            start = time.perf_counter()
            row = run.train_step()
            row["tokens_per_s"] = row["tokens"] / (time.perf_counter() - start)
            if row["skipped"]:
                log(f"step {run.step}: inf/NaN gradients, step skipped; loss scale now {run.scaler.scale_value:g}")
            if run.step % cfg.eval_interval == 0 or run.step == cfg.max_steps:
                validation = run.validation_metrics()
                row.update(validation)
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()
            bar.update(row)
            if run.step % cfg.checkpoint_interval == 0 or run.step == cfg.max_steps:
                run.save()
                plot_loss(run.dir)
    bar.close()
    return validation or run.validation_metrics()


def train(config, log=print, progress=True):
    """Run (or resume) pretraining to config.max_steps; return the final validation loss."""
    run = Run(config)
    val_loss = fit(run, log, progress)["val_loss"]
    log(f"validation loss {val_loss:.4f} (perplexity {math.exp(val_loss):.1f}) after {run.step} steps; run saved in {run.dir}")
    return val_loss


def plot_loss(run_dir):
    rows = read_metrics(pathlib.Path(run_dir) / "metrics.jsonl")
    steps = [r["step"] for r in rows]
    evals = [r for r in rows if "val_loss" in r]
    plot_curves(pathlib.Path(run_dir) / "loss.png", {
        "train": (steps, [r["loss"] for r in rows]),
        "val": ([r["step"] for r in evals], [r["val_loss"] for r in evals])})


def read_metrics(path):
    path = pathlib.Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _truncate_metrics(path, step):
    """Drop metric lines past the resumed step, so a resumed run's file reads as one uninterrupted run."""
    rows = [r for r in read_metrics(path) if r["step"] <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _jsonable(state):
    """NumPy's bit-generator state with its integers as plain Python ints (for JSON)."""
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    return int(state) if isinstance(state, (np.integer, int)) else state


class _progress_bar:
    """A tqdm bar with loss, tokens/s (DPO: preference accuracy), validation loss and time left; or nothing."""

    def __init__(self, total, initial, enabled):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)

    def update(self, row):
        if self.bar is None:
            return
        postfix = {"loss": f"{row['loss']:.3f}", "tok/s": f"{row['tokens_per_s']:,.0f}"}
        for key, short in (("rewards/accuracies", "acc"), ("val_loss", "val")):
            if key in row:
                postfix[short] = f"{row[key]:.3f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def evaluate_run(run_dir, log=print, device="cpu"):
    """Validation loss, perplexity and bits per byte of a run's newest checkpoint, on all of its validation data."""
    run = Run.open(run_dir, device)
    loss, total_nats, n_bytes = run.evaluate(with_bytes=True)
    bpb = total_nats / math.log(2) / max(n_bytes, 1)
    log(f"{run_dir} at step {run.step}: validation loss {loss:.4f}, perplexity {math.exp(loss):.2f}, "
        f"{bpb:.4f} bits per byte")
    return {"step": run.step, "val_loss": loss, "perplexity": math.exp(loss), "bits_per_byte": bpb}


# ---------------------------------------------------------------------------------------------- CLI

_SKIPPED_FLAGS = ("data", "model_overrides", "beta1", "beta2", "log_interval")  # set otherwise, or by config file


def add_config_flags(parser, config_class, skip=_SKIPPED_FLAGS):
    """A --flag-name for each str, int and float field of a LoopConfig subclass (None: keep the default)."""
    for field in dataclasses.fields(config_class):
        if field.name not in skip and field.type in (str, int, float):
            parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=field.type)


def flag_values(args, config_class):
    """The config fields given as flags on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if getattr(args, f.name, None) is not None}


def config_from_args(args):
    """A TrainConfig from a config file (if any), then the flags given on the command line."""
    values = load_config_file(args.config) if args.config else {}
    values["data"] = args.data or values.get("data")
    if not values["data"]:
        raise ValueError("say which prepared data folder to train on: --data DIR (or `data` in the config file)")
    values.update(flag_values(args, TrainConfig))
    for item in args.set or []:
        key, _, value = item.partition("=")
        try:
            parsed = json.loads(value)  # numbers, true/false, null
        except json.JSONDecodeError:
            parsed = value  # plain words such as rope or rmsnorm
        values.setdefault("model_overrides", {})[key] = parsed
    return TrainConfig.from_dict(values, where=args.config or "command line")


def add_commands(subparsers):
    p = subparsers.add_parser("train", help="pretrain a GPT on a prepared data folder (resumes a run that exists)")
    p.add_argument("--data", help="folder made by `tinyllm data prepare`")
    p.add_argument("--config", help="TOML or JSON file of training options (flags override it)")
    add_config_flags(p, TrainConfig)
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="change a GPTConfig field, e.g. --set n_layer=2")
    p.add_argument("--cuda-graph", action="store_const", const=True, dest="cuda_graph",
                   help="with --device cuda: replay each step from a CUDA graph (much faster for small models)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=lambda args: train(config_from_args(args), progress=not args.no_progress) and None)

    p = subparsers.add_parser("eval", help="validation loss, perplexity and bits per byte of a run")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--device", default="cpu", help="cpu (default, wherever the run was trained) or cuda")
    p.set_defaults(handler=lambda args: evaluate_run(args.run, device=args.device) and None)
