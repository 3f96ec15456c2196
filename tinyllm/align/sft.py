"""`tinyllm sft`: supervised fine-tuning, teaching a pretrained GPT the chat format from demonstrations.

The pretrained run's tokenizer gets the chat markers (template.add_chat_tokens) and its model grows
to fit them (GPT.resize_token_embeddings). Each step takes batch_size conversations, right-padded
(see data.py), and minimises the cross-entropy of the assistant's tokens only:

    loss = sum over assistant tokens t of -log p(x_t | x_<t)  /  number of assistant tokens

(the other positions' targets are -100, ignored; lm_head runs at the answer positions alone, see
logprobs.py). The step, the schedule, the
checkpoints, the exact resume, metrics.jsonl and the progress bar are pretraining's (train.Trainer).
The run directory is a training run like any other: `tinyllm sample --run`, `tinyllm chat --run`
and `tinyllm dpo --sft` read it.
"""
import dataclasses

from .. import amp, random
from ..autograd import no_grad
from ..nn import functional as F
from ..sample import load_run_model
from ..train import LoopConfig, Trainer, add_config_flags, fit, flag_values
from .data import IGNORE, ExampleLoader, encode_example, held_out_batches, pad_batch, read_conversations
from .logprobs import answer_logits
from .template import add_chat_tokens


@dataclasses.dataclass(kw_only=True)
class SFTConfig(LoopConfig):
    base: str                  # the pretrained run directory
    data: str                  # JSONL of conversations (`messages`, or Alpaca instruction/input/output)
    val: str | None = None     # the same, held out for the validation loss
    out: str = "runs/sft"
    max_steps: int = 300
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_steps: int = 20
    eval_interval: int = 100
    eval_batches: int = 10
    checkpoint_interval: int = 100


def load_chat_model(run_dir, **model_changes):
    """(model, tokenizer) of a run, in training mode, with the chat markers in the tokenizer and rows
    for them in the model (added if the run lacks them); model_changes as load_run_model's."""
    model, tokenizer = load_run_model(run_dir, **model_changes)
    tokenizer = add_chat_tokens(tokenizer)
    if tokenizer.vocab_size > model.config.vocab_size:
        model.resize_token_embeddings(tokenizer.vocab_size)
    return model.train(), tokenizer


class SFTRun(Trainer):
    section = "sft"

    def __init__(self, config):
        super().__init__(config)
        random.manual_seed(config.seed)
        self.model, self.tokenizer = load_chat_model(config.base)
        self.model.to(self.device)
        self.model_config = self.model.config
        block = self.model_config.block_size
        self.train_examples = [encode_example(self.tokenizer, m, block) for m in read_conversations(config.data)]
        self.val_examples = [encode_example(self.tokenizer, m, block) for m in read_conversations(config.val)] if config.val else []
        self.optimizer = self.model.configure_optimizers(config.weight_decay, config.lr, (config.beta1, config.beta2))
        self.loader = ExampleLoader([len(x) for x, _ in self.train_examples], config.batch_size, seed=config.seed)

    def describe(self):
        return (f"SFT of {self.config.base} ({self.model.num_parameters():,} parameters) on {len(self.train_examples):,} "
                f"conversations ({len(self.val_examples):,} held out), batch {self.config.batch_size}, {self.config.max_steps} steps")

    def forward_backward(self):
        inputs, targets = pad_batch([self.train_examples[i] for i in next(self.loader)])
        loss = self._loss(self.on_device(inputs), targets)
        self.scaler.scale(loss).backward()
        return {"loss": loss.item(), "tokens": int(inputs.size)}

    def _loss(self, inputs, targets):
        """The mean cross-entropy of the answer tokens (lm_head runs at those alone; see logprobs.py)."""
        with amp.autocast(self.config.dtype):
            logits, labels, _ = answer_logits(self.model, inputs, targets)
            return F.cross_entropy(logits, labels)

    @no_grad()
    def validation_metrics(self):
        """The mean loss per assistant token over (up to eval_batches batches of) the held-out conversations."""
        if not self.val_examples:
            return {}
        self.model.eval()
        total, count = 0.0, 0
        for _, batch in held_out_batches(self.val_examples, self.config.batch_size, self.config.eval_batches):
            inputs, targets = pad_batch(batch)
            loss = self._loss(self.on_device(inputs), targets)
            n = int((targets != IGNORE).sum())
            total, count = total + loss.item() * n, count + n
        self.model.train()
        return {"val_loss": total / count}


def sft(config, log=print, progress=True):
    """Fine-tune (or resume) to config.max_steps; return the last validation metrics."""
    run = SFTRun(config)
    metrics = fit(run, log, progress)
    log(f"SFT done at step {run.step}" + (f", validation loss {metrics['val_loss']:.4f}" if metrics else "")
        + f"; run saved in {run.dir}")
    return metrics


def add_commands(subparsers):
    p = subparsers.add_parser("sft", help="supervised fine-tuning of a pretrained run on chat data (resumes a run that exists)")
    p.add_argument("--base", required=True, help="the pretrained run directory")
    p.add_argument("--data", required=True, help="JSONL of conversations: `messages`, or instruction/input/output")
    p.add_argument("--val", help="held-out JSONL in the same format, for the validation loss")
    add_config_flags(p, SFTConfig, skip=("base", "data", "val", "beta1", "beta2", "log_interval"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=lambda args: sft(SFTConfig(**flag_values(args, SFTConfig)), progress=not args.no_progress) and None)
