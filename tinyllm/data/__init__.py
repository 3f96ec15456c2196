"""The data pipeline: from raw text files to batches of token ids.

    sources  ──> clean ──> dedup ──> split ──> (tokenizer) ──> shards ──> loader
    files,       strip      exact +    by doc,                  .bin       random (B, T+1)
    built-in     headers,   MinHash    related                  files      windows, resumable
    corpora      NFC        LSH        docs together

`prepare.run_prepare` chains the stages (the `tinyllm data prepare` command); each stage is a module
of its own and can be used alone.
"""
