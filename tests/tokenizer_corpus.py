"""A small synthetic corpus for the tokenizer tests: English-like words, numbers, punctuation, runs of
spaces, line breaks, contractions and non-Latin scripts, made by a seeded generator so every run and
machine sees the same text. `make_text(seed)` with a new seed gives held-out text."""
import random

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one "
         "had by word but not what all were we when your can said there use an each which she do how their "
         "if will up other about out many then them these so some her would make like him into time has look "
         "two more write go see number no way could people my than first water been call who oil its now "
         "find long down day did get come made may part tokenizer merge byte").split()
EXTRA = ["don't", "I'm", "we'll", "they've", "she'd", "IT'S", "naïve", "café", "Straße", "東京", "日本語", "😀",
         "👍🏽", "e\u0301", "Ωμέγα", "Привет", "١٢٣", "2024", "3.14159", "$42", "(x)", "--", "...", "\t", "  ", "\r\n"]


def make_text(seed, n_words=20000):
    rng = random.Random(seed)
    out = []
    for _ in range(n_words):
        r = rng.random()
        word = rng.choice(EXTRA) if r < 0.08 else rng.choice(WORDS)
        if rng.random() < 0.1:
            word = word.capitalize()
        out.append(word)
        out.append(rng.choice([" ", " ", " ", " ", ", ", ". ", "\n", "\n\n", "   ", "!\n"]))
    return "".join(out)
