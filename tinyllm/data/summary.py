"""The table `tinyllm data prepare` prints at the end, made from the meta dict that it writes."""


def format_summary(meta, show_pairs=3):
    """Documents and paragraphs in, removed by each stage and why, near-duplicate pairs (the first
    `show_pairs`), the split, tokens per split, and each stage's time."""
    docs = meta["stages"]["documents"]
    clean, dedup = docs["clean"], docs["dedup"]
    shards = meta["stages"]["shards"]
    times = meta["times"]
    reused = set(meta.get("reused", ()))

    def took(stage, timer=None):
        """The time of one timer of a stage (default: the stage's own), or "reused"."""
        return "reused" if stage in reused else f"{times[timer or stage]:.1f}s"

    near_docs = len(dedup["near_docs"])
    rows = [
        ("fetch", took("fetch"), f"{meta['source']['files']} files"
         + (f" of built-in corpus '{meta['source']['corpus']}'" if meta["source"]["corpus"] else "")),
        ("read+clean", took("documents", "read+clean"),
         f"{clean['docs_in']} documents in, {len(clean['removed'])} removed"
         + "".join(f"; {name}: {why}" for name, why in clean["removed"][:3])
         + f"; boilerplate cut from {len({n for n, _ in clean['stripped']})}"),
        ("dedup docs", took("documents", "dedup"),
         f"{len(dedup['exact_docs'])} exact duplicates, {near_docs} near-duplicate pairs "
         f"(Jaccard >= threshold); {dedup['docs_out']} documents left"),
        ("dedup paragraphs", "",
         f"{dedup['paragraphs_in']:,} in: {dedup['exact_repeats']:,} exact repeats "
         f"({dedup['exact_removed']:,} long enough to remove), {len(dedup['near_pairs']):,} near-duplicate "
         f"pairs ({dedup['near_removed']:,} removed); {dedup['paragraphs_out']:,} left"),
    ]
    split_docs = {s: [d for d in meta["documents"] if d["split"] == s] for s in ("train", "val")}
    groups = {}
    for d in meta["documents"]:
        groups.setdefault(d["group"], []).append(d["name"])
    related = sum(len(members) > 1 for members in groups.values())
    rows.append(("group+split", took("documents", "group"),
                 f"{len(split_docs['train'])} train / {len(split_docs['val'])} val documents; "
                 f"{related} groups of related documents kept on one side"))
    rows.append(("tokenizer", took("tokenizer"), f"vocab {meta['stages']['tokenizer']['vocab_size']:,}"))
    rows.append(("shards", took("shards"), ", ".join(f"{s} {shards['tokens'][s]:,} tokens"
                                                     for s in ("train", "val")) + f" ({shards['dtype']})"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'stage':<{width}}  {'time':>7}  result", "-" * (width + 60)]
    lines += [f"{name:<{width}}  {t:>7}  {what}" for name, t, what in rows]
    if dedup["near_pairs"]:
        lines.append(f"near-duplicate paragraphs, first {min(show_pairs, len(dedup['near_pairs']))}:")
        for pair in dedup["near_pairs"][:show_pairs]:
            lines.append(f"  J={pair['jaccard']:.2f}  {_short(pair['first_doc'])}: {_snippet(pair['first_text'])}")
            lines.append(f"          {_short(pair['second_doc'])}: {_snippet(pair['second_text'])}")
    lines.append("validation: " + ", ".join(_short(d["name"]) for d in split_docs["val"]))
    return "\n".join(lines)


def _short(name):
    return name.rsplit("/", 1)[-1]


def _snippet(text, width=60):
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."
