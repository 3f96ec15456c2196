"""`tinyllm dpo`: Direct Preference Optimization of an SFT run on pairs of answers (see dpo.py for the loss).

The policy starts as the SFT model; the reference is the same SFT model, frozen. A pair's sequence
log-probability is the sum over the answer's tokens only (data.encode_pair's targets):

    log pi(y|x) = sum over answer tokens t of log pi(y_t | x, y_<t)

Each step stacks the batch's chosen and rejected sequences into one batch and runs the policy on it
once (with gradients) and the reference once (without). The reference's log-probabilities are
computed on the fly rather than cached for the whole file beforehand: a run sees each pair about
once, so a cache would cost the same forward passes, all before the first step, for pairs the run may
never reach; and policy and reference see the very same batch, so at step 0 their log-probabilities
agree exactly and the loss is exactly log 2. The reference's logits also give the KL. Logged, as TRL:

    rewards/chosen, rewards/rejected   beta * (log pi - log ref) of each answer, averaged
    rewards/margins                    their difference
    rewards/accuracies                 how often the chosen answer's reward beats the rejected one's
                                       (a tie counts half: at step 0, policy = reference, it is 0.5)
    kl                                 KL(pi || ref) per answer token, on the chosen answers:
                                       sum over the vocabulary of pi (log pi - log ref) at each position,
                                       averaged over the answer tokens

and the same on the held-out pairs (val_ prefix). Checkpoints and exact resume are train.Trainer's.

rpo_alpha > 0 adds alpha times the policy's negative log-likelihood of the chosen answers (per answer
token) to the loss, as TRL's rpo_alpha (Pang et al. 2024, "Iterative Reasoning Preference
Optimization"): DPO alone only widens the gap between the two answers, and can do so by making both
less likely, which a greedy decoder then feels; the NLL term keeps the chosen answer likely. Logged
as nll_loss.

The policy trains without dropout (disable_dropout, as TRL's default; --keep-dropout keeps the SFT
model's): with it, a pair's reward log pi - log ref would be dropout's noise as much as the policy's
change, and at step 0 policy and reference would not be the same function.
"""
import dataclasses

import numpy as np

from .. import amp, random
from ..autograd import no_grad
from ..train import LoopConfig, Trainer, add_config_flags, fit, flag_values
from .data import ExampleLoader, encode_pair, held_out_batches, pad_batch, read_pairs
from .dpo import LOSS_TYPES, dpo_loss
from .logprobs import answer_logits, sequence_logps, sum_by_row, token_kl, token_logps
from .sft import load_chat_model

@dataclasses.dataclass(kw_only=True)
class DPOConfig(LoopConfig):
    sft: str                   # the SFT run directory: the policy's start and the reference
    data: str                  # JSONL of prompt / chosen / rejected
    val: str | None = None     # held-out pairs, for the validation metrics
    out: str = "runs/dpo"
    beta: float = 0.1
    label_smoothing: float = 0.0
    loss_type: str = "sigmoid"
    rpo_alpha: float = 0.0     # weight of the chosen answers' NLL added to the loss (0: plain DPO)
    disable_dropout: bool = True  # train the policy without the SFT model's dropout, as TRL does
    batch_size: int = 16
    max_steps: int = 200
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup_steps: int = 10
    weight_decay: float = 0.0
    eval_interval: int = 50
    eval_batches: int = 10
    checkpoint_interval: int = 50


def preference_metrics(chosen_rewards, rejected_rewards):
    """The logged reward statistics of a batch of pairs, from the (B,) rewards as arrays."""
    margins = chosen_rewards - rejected_rewards
    return {"rewards/chosen": float(chosen_rewards.mean()), "rewards/rejected": float(rejected_rewards.mean()),
            "rewards/accuracies": float((margins > 0).mean() + 0.5 * (margins == 0).mean()),
            "rewards/margins": float(margins.mean())}


class DPORun(Trainer):
    section = "dpo"

    def __init__(self, config):
        super().__init__(config)
        if config.loss_type not in LOSS_TYPES:
            raise ValueError(f"--loss-type must be one of {LOSS_TYPES}, got {config.loss_type!r}")
        if config.rpo_alpha < 0:
            raise ValueError(f"--rpo-alpha must be >= 0, got {config.rpo_alpha}")
        random.manual_seed(config.seed)
        self.model, self.tokenizer = load_chat_model(config.sft, **({"dropout": 0.0} if config.disable_dropout else {}))
        self.reference, _ = load_chat_model(config.sft)
        self.model.to(self.device)
        self.reference.to(self.device).eval().requires_grad_(False)
        self.model_config = self.model.config
        self.train_pairs = self.encode_pairs(config.data)
        self.val_pairs = self.encode_pairs(config.val) if config.val else []
        self.optimizer = self.model.configure_optimizers(config.weight_decay, config.lr, (config.beta1, config.beta2))
        self.loader = ExampleLoader([max(len(c[0]), len(r[0])) for c, r in self.train_pairs], config.batch_size, seed=config.seed)

    def encode_pairs(self, path):
        """The (chosen, rejected) examples of a DPO file, for pair_logps."""
        return [encode_pair(self.tokenizer, *pair, self.model_config.block_size) for pair in read_pairs(path)]

    def describe(self):
        cfg = self.config
        rpo = f", NLL weight {cfg.rpo_alpha}" if cfg.rpo_alpha else ""
        return (f"DPO ({cfg.loss_type}, beta {cfg.beta}, label smoothing {cfg.label_smoothing}{rpo}) of {cfg.sft} on "
                f"{len(self.train_pairs):,} pairs ({len(self.val_pairs):,} held out), batch {cfg.batch_size}, {cfg.max_steps} steps")

    @no_grad()
    def pair_logps(self, model, pairs):
        """(len(pairs), 2) log-probabilities of each pair's chosen and rejected answer under model, in
        evaluation mode (no dropout), as the held-out metrics; the model's mode is kept."""
        out = np.zeros((len(pairs), 2))
        was_training = model.training
        model.eval()
        for start, batch in held_out_batches(pairs, self.config.batch_size, len(pairs)):
            inputs, targets = pad_batch([c for c, _ in batch] + [r for _, r in batch])
            with amp.autocast(self.config.dtype):
                out[start:start + len(batch)] = sequence_logps(model, self.on_device(inputs), targets).numpy().reshape(2, -1).T
        model.train(was_training)
        return out

    # ------------------------------------------------------------------ training
    def _loss(self, pairs):
        """(mean DPO loss, metrics) of a batch of pairs: chosen and rejected stacked, the policy and the
        reference run once each."""
        cfg = self.config
        inputs, targets = pad_batch([c for c, _ in pairs] + [r for _, r in pairs])
        inputs, n = self.on_device(inputs), len(pairs)
        with amp.autocast(cfg.dtype):
            logits, labels, rows = answer_logits(self.model, inputs, targets)
            logps = sum_by_row(token_logps(logits, labels), rows, 2 * n)
            with no_grad():
                reference_logits, _, _ = answer_logits(self.reference, inputs, targets)
                reference = sum_by_row(token_logps(reference_logits, labels), rows, 2 * n)
            losses, chosen_rewards, rejected_rewards = dpo_loss(logps[:n], logps[n:], reference[:n], reference[n:], cfg.beta,
                                                                cfg.label_smoothing, cfg.loss_type)
            chosen = rows < n  # the answer tokens of the chosen rows, which come first
            nll = -logps[:n].sum() / int(chosen.sum())  # per chosen answer token
            loss = losses.mean() + nll * cfg.rpo_alpha if cfg.rpo_alpha else losses.mean()
        metrics = {"loss": loss.item(), "nll_loss": nll.item(), **preference_metrics(chosen_rewards.numpy(), rejected_rewards.numpy()),
                   "logps/chosen": float(logps[:n].detach().numpy().mean()), "logps/rejected": float(logps[n:].detach().numpy().mean()),
                   "kl": token_kl(logits.detach().numpy()[chosen], reference_logits.numpy()[chosen]), "tokens": inputs.numel()}
        return loss, metrics

    def forward_backward(self):
        loss, metrics = self._loss([self.train_pairs[i] for i in next(self.loader)])
        self.scaler.scale(loss).backward()
        return metrics

    @no_grad()
    def validation_metrics(self):
        """The step metrics, averaged over (up to eval_batches batches of) the held-out pairs, with a val_ prefix."""
        if not self.val_pairs:
            return {}
        self.model.eval()
        rows = [(len(batch), self._loss(batch)[1])
                for _, batch in held_out_batches(self.val_pairs, self.config.batch_size, self.config.eval_batches)]
        self.model.train()
        total = sum(n for n, _ in rows)
        return {f"val_{key}": sum(n * m[key] for n, m in rows) / total for key in rows[0][1] if key != "tokens"}


def dpo(config, log=print, progress=True):
    """Optimise (or resume) to config.max_steps; return the last validation metrics."""
    run = DPORun(config)
    metrics = fit(run, log, progress)
    if metrics:
        log(f"DPO done at step {run.step}: held-out loss {metrics['val_loss']:.4f}, preference accuracy "
            f"{metrics['val_rewards/accuracies']:.3f}, margin {metrics['val_rewards/margins']:.3f}, KL {metrics['val_kl']:.4f}")
    log(f"run saved in {run.dir}")
    return metrics


def add_commands(subparsers):
    p = subparsers.add_parser("dpo", help="Direct Preference Optimization of an SFT run on chosen/rejected pairs (resumes a run that exists)")
    p.add_argument("--sft", required=True, help="the SFT run directory (the policy's start and the frozen reference)")
    p.add_argument("--data", required=True, help="JSONL of prompt / chosen / rejected (strings or message lists)")
    p.add_argument("--val", help="held-out pairs in the same format")
    add_config_flags(p, DPOConfig, skip=("sft", "data", "val", "beta1", "beta2", "log_interval"))
    p.add_argument("--keep-dropout", dest="disable_dropout", action="store_false",
                   help="train the policy with the SFT model's dropout (default: without, as TRL)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=lambda args: dpo(DPOConfig(**flag_values(args, DPOConfig)), progress=not args.no_progress) and None)
