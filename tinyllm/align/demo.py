"""`tinyllm align-demo`: SFT then DPO on instruction tasks the project makes itself, measured at each stage.

1. make the task data from the Shakespeare corpus (tasks.build_datasets: questions whose answers a
   program checks, each with a correct and a plausible wrong answer; held-out lines for val and eval);
2. greedy answer accuracy of the pretrained base (given the chat markers, which it has never seen);
3. SFT on the correct answers (`tinyllm sft`), and its greedy answer accuracy;
4. DPO (`tinyllm dpo`) on pairs of a correct answer and a wrong one: by default the SFT model's own
   mistake on that question (tasks.wrong_answers_of: on-policy pairs), else the task's made-up wrong
   answer (rejected="task"); the held-out preference accuracy before (policy = reference: 0.5) and
   after, on held-out pairs of both kinds, and its greedy answer accuracy;
5. a table, and results.json in the output folder.

SFT and DPO are timed on their own (the bar: both together under 10 minutes on 2 CPU cores); DPO's
time includes asking the SFT model for its answers. Making the task data and the greedy evaluations
are not in that time. device="cuda" runs every stage on the GPU (its float rounding, amplified by
training, gives other figures than the CPU's; the bar is the CPU's).
"""
import json
import pathlib
import time
from collections import Counter

from ..atomic import atomic_write_json, atomic_write_jsonl
from ..backend.array import usable_device
from ..sample import load_run_model
from ..train import fit
from .dpo_train import DPOConfig, DPORun
from .sft import SFTConfig, load_chat_model, sft
from .tasks import answer_accuracy, build_datasets, wrong_answers_of

# Sized for 2 CPU cores (SFT + DPO about 8 of the bar's 10 minutes). SFT sees each question about 2.4
# times: 1200 steps doubled greedy accuracy over 300 (0.18 -> 0.36, benchmarks/RESULTS.md). DPO sees
# 2400 pairs once, with the chosen answers' NLL added (rpo_alpha): plain DPO lowered greedy accuracy
# far below SFT's (0.34 -> 0.10), with the NLL term it stays within 0.02 of it. Its rejected answers
# are the SFT model's own mistakes: DPO learns to avoid what the model says (held-out preference
# accuracy 0.82, against 0.65 when trained on the made-up wrong answers, which it seldom gives).
DEMO = dict(n_train=8000, n_val=200, n_eval=320, seed=0,
            sft=dict(max_steps=1200, batch_size=16, lr=1e-3, min_lr=1e-4, warmup_steps=20, eval_interval=400,
                     checkpoint_interval=400),
            rejected="model",
            dpo=dict(max_steps=150, batch_size=16, lr=1e-4, min_lr=1e-5, warmup_steps=10, beta=0.1, rpo_alpha=1.0,
                     eval_interval=50, checkpoint_interval=50))


def read_records(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def own_mistake_pairs(model, tokenizer, data, out, n_train, seed):
    """The first n_train training pairs and all held-out pairs with the (SFT) model's own mistakes as
    the rejected answers, written to out/dpo_{train,val}.jsonl (kept when they exist: a resumed
    demo trains on the same pairs); returns {file: {"model": n, "task": n}}, who wrote the rejected answers."""
    counts = {}
    for name, n in (("dpo_train.jsonl", n_train), ("dpo_val.jsonl", None)):
        if not (out / name).is_file():
            atomic_write_jsonl(out / name, wrong_answers_of(model, tokenizer, read_records(data / name)[:n], seed=seed))
        counts[name] = dict(Counter(r["rejected_by"] for r in read_records(out / name)))
    return counts


def align_demo(base="runs/quickstart", out="runs/align-demo", log=print, progress=True, device="cpu", **overrides):
    """Run the demonstration (resuming what a previous call finished) on device; return the results dict."""
    settings = {**DEMO, **overrides}
    if settings["rejected"] not in ("model", "task"):
        raise ValueError(f"rejected must be 'model' (the SFT model's own mistakes) or 'task', got {settings['rejected']!r}")
    device = usable_device(device)
    out = pathlib.Path(out)
    data = out / "data"
    if not (data / "eval.jsonl").is_file():
        log(f"== making the task data in {data}")
        data.mkdir(parents=True, exist_ok=True)
        log(build_datasets(data, seed=settings["seed"], n_train=settings["n_train"], n_val=settings["n_val"],
                           n_eval=settings["n_eval"]))
    eval_records = read_records(data / "eval.jsonl")
    results = {"base_run": str(base), "device": device, "settings": settings}

    def measure(stage, model, tokenizer):
        start = time.perf_counter()
        results[stage] = answer_accuracy(model.to(device), tokenizer, eval_records)
        log(f"{stage}: greedy answer accuracy {results[stage]['overall']:.3f} on {len(eval_records)} held-out questions "
            f"({time.perf_counter() - start:.0f} s)")

    measure("base", *load_chat_model(base))

    log("\n== SFT")
    start = time.perf_counter()
    sft_config = SFTConfig(base=str(base), data=str(data / "sft_train.jsonl"), val=str(data / "sft_val.jsonl"),
                           out=str(out / "sft"), seed=settings["seed"], device=device, **settings["sft"])
    results["sft_val_loss"] = sft(sft_config, log, progress).get("val_loss")
    results["sft_seconds"] = time.perf_counter() - start
    sft_model, tokenizer = load_run_model(out / "sft")
    measure("sft", sft_model.to(device), tokenizer)

    log("\n== DPO")
    start = time.perf_counter()
    pairs = data
    if settings["rejected"] == "model":
        pairs = out / "dpo_pairs"
        pairs.mkdir(exist_ok=True)
        dpo = settings["dpo"]
        results["rejected_by"] = own_mistake_pairs(sft_model, tokenizer, data, pairs, dpo["max_steps"] * dpo["batch_size"], settings["seed"])
        log(f"pairs with the SFT model's own mistakes as rejected answers, {time.perf_counter() - start:.0f} s "
            f"(who wrote the rejected answers: {results['rejected_by']})")
    dpo_config = DPOConfig(sft=str(out / "sft"), data=str(pairs / "dpo_train.jsonl"), val=str(pairs / "dpo_val.jsonl"),
                           out=str(out / "dpo"), seed=settings["seed"], eval_batches=10**6, device=device, **settings["dpo"])
    run = DPORun(dpo_config)  # the policy is the SFT model until fit resumes a checkpoint, if any
    made = time.perf_counter()
    results["preference_before"] = run.validation_metrics()
    reference = run.pair_logps(run.reference, run.val_pairs)
    results["sft_likelihood_prefers_chosen"] = float((reference[:, 0] > reference[:, 1]).mean())
    log(f"before DPO: held-out preference accuracy {results['preference_before']['val_rewards/accuracies']:.3f}; "
        f"the SFT model itself finds the chosen answer more likely in {results['sft_likelihood_prefers_chosen']:.3f} of the pairs")
    start += time.perf_counter() - made  # the evaluation above is not part of DPO's time
    results["preference_after"] = fit(run, log, progress)
    results["dpo_seconds"] = time.perf_counter() - start
    results["preference_after_by_task"] = accuracy_by_task(run.pair_logps(run.model, run.val_pairs) - reference,
                                                           [r["task"] for r in read_records(pairs / "dpo_val.jsonl")])
    if pairs != data:  # the same held-out questions with the tasks' made-up wrong answers
        made_up = run.encode_pairs(data / "dpo_val.jsonl")
        results["preference_after_task_pairs"] = accuracy_by_task(
            run.pair_logps(run.model, made_up) - run.pair_logps(run.reference, made_up),
            [r["task"] for r in read_records(data / "dpo_val.jsonl")])
    measure("dpo", *load_run_model(out / "dpo"))

    atomic_write_json(out / "results.json", results)
    log("\n" + format_results(results))
    return results


def accuracy_by_task(log_ratios, tasks):
    """{task: how often the chosen answer's reward beats the rejected one's (ties half)} from the
    (N, 2) policy - reference log-probabilities of held-out pairs."""
    margins = log_ratios[:, 0] - log_ratios[:, 1]
    wins = (margins > 0) + 0.5 * (margins == 0)
    return {"overall": float(wins.mean()), **{task: float(wins[[t == task for t in tasks]].mean()) for task in sorted(set(tasks))}}


def format_results(results):
    """The demo's figures as a table."""
    before = results["preference_before"]["val_rewards/accuracies"]
    after = results["preference_after"]
    lines = [f"{'stage':<6} {'greedy answer accuracy':>23} {'held-out preference accuracy':>29} {'wall time':>10}",
             f"{'base':<6} {results['base']['overall']:>23.3f} {'':>29} {'':>10}",
             f"{'SFT':<6} {results['sft']['overall']:>23.3f} {before:>29.3f} {results['sft_seconds']:>9.0f}s",
             f"{'DPO':<6} {results['dpo']['overall']:>23.3f} {after['val_rewards/accuracies']:>29.3f} {results['dpo_seconds']:>9.0f}s",
             f"SFT + DPO: {results['sft_seconds'] + results['dpo_seconds']:.0f} s; DPO held-out margin "
             f"{after['val_rewards/margins']:.3f}, KL to the SFT model {after['val_kl']:.4f} per answer token",
             f"held-out pairs' rejected answers by: {results['settings']['rejected']} "
             f"({results.get('rejected_by', {}).get('dpo_val.jsonl', 'all')})",
             "held-out preference accuracy after DPO per task: " + _by_task(results["preference_after_by_task"]),
             *(["the same on the tasks' made-up wrong answers: " + _by_task(results["preference_after_task_pairs"])]
               if "preference_after_task_pairs" in results else []),
             "greedy answer accuracy per task (base / SFT / DPO): " + ", ".join(
                 f"{task} {results['base'][task]:.2f}/{results['sft'][task]:.2f}/{results['dpo'][task]:.2f}"
                 for task in results['dpo'] if task != "overall")]
    return "\n".join(lines)


def _by_task(accuracies):
    return ", ".join(f"{task} {accuracy:.2f}" for task, accuracy in accuracies.items())


def add_commands(subparsers):
    p = subparsers.add_parser("align-demo", help="SFT then DPO of a pretrained run on self-made instruction tasks, measured")
    p.add_argument("--base", default="runs/quickstart", help="the pretrained run (default: runs/quickstart)")
    p.add_argument("--out", default="runs/align-demo")
    p.add_argument("--rejected", choices=("model", "task"), default=DEMO["rejected"],
                   help="DPO's rejected answers: the SFT model's own mistakes (default) or the tasks' made-up ones")
    p.add_argument("--device", default="cpu", help="cpu (default; the bar's figures) or cuda")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=lambda args: align_demo(args.base, args.out, progress=not args.no_progress, device=args.device,
                                                   rejected=args.rejected) and None)
