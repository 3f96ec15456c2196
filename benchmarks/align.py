"""The alignment demonstration as a benchmark: SFT then DPO of the quickstart's GPT on the self-made
instruction tasks, with greedy answer accuracy after each stage and held-out preference accuracy
before and after DPO.

    python -m tinyllm quickstart                   # once: the pretrained base, runs/quickstart
    python benchmarks/align.py [--base runs/quickstart] [--out runs/align-demo] [--rejected model|task] [--device cuda]

The bar (2 CPU cores): held-out preference accuracy from about 0.5 to at least 0.9 with DPO, DPO's
greedy answer accuracy above SFT's, and SFT + DPO in under 10 minutes. Prints the table and writes
the figures to benchmarks/results/align.json. A run folder that exists is resumed, so delete it to
time a run from scratch.
"""
import argparse
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from tinyllm.align.demo import DEMO, align_demo  # noqa: E402
from tinyllm.atomic import atomic_write_json  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="runs/quickstart")
    parser.add_argument("--out", default="runs/align-demo")
    parser.add_argument("--rejected", choices=("model", "task"), default=DEMO["rejected"],
                        help="DPO's rejected answers: the SFT model's own mistakes (default) or the tasks' made-up ones")
    parser.add_argument("--device", default="cpu", help="cpu (default; the bar's figures) or cuda")
    parser.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "align.json"))
    args = parser.parse_args()
    results = align_demo(args.base, args.out, progress=False, device=args.device, rejected=args.rejected)
    atomic_write_json(args.json, {**results, "cpu_count": os.cpu_count()})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
