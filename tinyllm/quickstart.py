"""`tinyllm quickstart`: the whole pipeline on the default corpus, on the CPU, in a few minutes.

1. prepare the Shakespeare corpus: fetch, clean, de-duplicate, split, train an 8192-token BPE
   tokenizer, write token shards;
2. pretrain the `small` GPT preset (4 layers, d 256, context 128) on it;
3. report the validation loss, perplexity and bits per byte;
4. print a sample.
Everything lands in the run directory (default runs/quickstart), which `tinyllm sample --run` and
`tinyllm eval --run` read. Running it again resumes or reuses what is already done.
"""
import pathlib
import time

from .data.prepare import PrepareConfig, run_prepare
from .data.summary import format_summary
from .sample import load_run_model, sample_text
from .train import TrainConfig, evaluate_run, train

QUICKSTART = dict(model="small", batch_size=16, lr=2e-3, min_lr=2e-4, warmup_steps=50, weight_decay=0.1,
                  eval_interval=100, eval_batches=20, checkpoint_interval=100, seed=1337)


def quickstart(out="runs/quickstart", max_steps=1000, prompt="ROMEO:", log=print, progress=True):
    out = pathlib.Path(out)
    start = time.perf_counter()
    log("== 1/4 preparing the Shakespeare corpus")
    meta = run_prepare(PrepareConfig(out=out / "data", vocab_size=8192, progress=progress), command="tinyllm quickstart")
    log(format_summary(meta))
    log(f"\n== 2/4 training the small GPT for {max_steps} steps")
    train(TrainConfig(data=str(out / "data"), out=str(out), max_steps=max_steps, **QUICKSTART), log=log, progress=progress)
    log("\n== 3/4 evaluating on the whole validation split")
    evaluate_run(out, log=log)
    log(f"\n== 4/4 a sample (temperature 0.8, top-k 50) for the prompt {prompt!r}\n")
    model, tokenizer = load_run_model(out)
    sample_text(model, tokenizer, prompt, max_new_tokens=200, temperature=0.8, top_k=50, seed=0)
    log(f"\ndone in {time.perf_counter() - start:.0f} s. More: tinyllm sample --run {out} --prompt \"...\"")


def add_commands(subparsers):
    p = subparsers.add_parser("quickstart", help="prepare Shakespeare, train a small GPT on the CPU, evaluate, sample")
    p.add_argument("--out", default="runs/quickstart", help="run directory (default: runs/quickstart)")
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--prompt", default="ROMEO:")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=lambda args: quickstart(args.out, args.max_steps, args.prompt, progress=not args.no_progress))
