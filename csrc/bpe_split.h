// Pre-tokenization: cut UTF-8 text into the pieces ("pre-tokens") that BPE then merges within.
//
// GPT-2 and GPT-4 (cl100k) define their pieces with a regular expression. Running a general regex
// engine is the slowest part of most tokenizers, so the two built-in patterns are written out here by
// hand as tiny state machines that return exactly what the regex returns (tests compare them with the
// `regex` package on random Unicode). A user's own pattern is split in Python and its pieces handed in.
//
//   GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   cl100k: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//           \s*[\r\n]+|\s+(?!\S)|\s+
//
// The regex tries its alternatives in order at each position and takes the first that matches; each
// function below does the same, alternative by alternative. Bytes that are not valid UTF-8 count as
// one "other" character each, so any input is split without reading out of bounds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bpe_unicode.h"

namespace tinyllm::bpe {

enum Pattern : int { kCustom = 0, kGPT2 = 1, kCL100K = 2 };
enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

struct Char {
    uint32_t cp;   // code point (0xFFFD for an invalid byte)
    uint32_t len;  // bytes it takes, 1..4
    uint8_t cls;
};

inline uint8_t char_class(uint32_t cp) {
    if (cp < 0x80) return unicode::kAsciiClass[cp];
    size_t lo = 0, hi = sizeof(unicode::kRanges) / sizeof(unicode::kRanges[0]);
    while (lo < hi) {  // first range whose `last` is >= cp
        size_t mid = (lo + hi) / 2;
        if (unicode::kRanges[mid].last < cp) lo = mid + 1; else hi = mid;
    }
    return lo < sizeof(unicode::kRanges) / sizeof(unicode::kRanges[0]) && unicode::kRanges[lo].first <= cp
               ? unicode::kRanges[lo].cls : kOther;
}

// Decodes the character starting at s[i] (requires i < n).
inline Char char_at(const unsigned char* s, size_t n, size_t i) {
    unsigned char b = s[i];
    if (b < 0x80) return {b, 1, unicode::kAsciiClass[b]};
    uint32_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
    if (len == 0 || b > 0xF4 || i + len > n) return {0xFFFD, 1, kOther};
    uint32_t cp = b & (0x3F >> (len - 1));
    for (uint32_t k = 1; k < len; ++k) {
        if ((s[i + k] & 0xC0) != 0x80) return {0xFFFD, 1, kOther};
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};  // reject overlong forms
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return {0xFFFD, 1, kOther};
    return {cp, len, char_class(cp)};
}

// End of the run of characters of class `cls` starting at i; *last gets the start of its last char.
inline size_t run_end(const unsigned char* s, size_t n, size_t i, uint8_t cls, size_t* last = nullptr) {
    size_t prev = i;
    while (i < n) {
        Char c = char_at(s, n, i);
        if (c.cls != cls) break;
        prev = i;
        i += c.len;
    }
    if (last) *last = prev;
    return i;
}

inline bool is_one_of(unsigned char b, const char* set) {
    for (; *set; ++set) if (b == static_cast<unsigned char>(*set)) return true;
    return false;
}

// Length of a contraction 's 't 're 've 'm 'll 'd at s[i] == '\'' (0 if none). With `fold`, letters
// match in either case, as cl100k's (?i:...) does (Unicode folding also lets 's' match U+017F 'ſ').
inline size_t contraction(const unsigned char* s, size_t n, size_t i, bool fold) {
    auto lower = [&](size_t k) -> unsigned char {
        unsigned char b = k < n ? s[k] : 0;
        return fold && b >= 'A' && b <= 'Z' ? b + 32 : b;
    };
    unsigned char a = lower(i + 1), b = lower(i + 2);
    if (is_one_of(a, "stmd")) return 2;
    if (fold && a == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) return 3;  // 'ſ
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// The white-space tail shared by both patterns: \s+(?!\S)|\s+ -- a run of spaces followed by a
// non-space gives up its last character, which then prefixes the next piece (" word").
inline size_t space_run(const unsigned char* s, size_t n, size_t i) {
    size_t last;
    size_t k = run_end(s, n, i, kSpace, &last);
    return (k < n && last > i) ? last : k;
}

inline size_t gpt2_piece_end(const unsigned char* s, size_t n, size_t i) {
    Char c = char_at(s, n, i);
    if (c.cp == '\'') {
        if (size_t k = contraction(s, n, i, false)) return i + k;
    }
    size_t j = i;  // " ?" : an optional leading space before a letter, number or other run
    Char d = c;
    if (c.cp == ' ' && i + 1 < n) {
        Char e = char_at(s, n, i + 1);
        if (e.cls != kSpace) { j = i + 1; d = e; }
    }
    if (d.cls != kSpace) return run_end(s, n, j, d.cls);  // ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+
    return space_run(s, n, i);
}

inline size_t cl100k_piece_end(const unsigned char* s, size_t n, size_t i) {
    Char c = char_at(s, n, i);
    if (c.cp == '\'') {
        if (size_t k = contraction(s, n, i, true)) return i + k;
    }
    if (c.cls == kLetter) return run_end(s, n, i, kLetter);  // \p{L}+
    bool next_is_letter = i + c.len < n && char_at(s, n, i + c.len).cls == kLetter;
    if (c.cls != kNumber && c.cp != '\r' && c.cp != '\n' && next_is_letter)  // [^\r\n\p{L}\p{N}]\p{L}+
        return run_end(s, n, i + c.len, kLetter);
    if (c.cls == kNumber) {  // \p{N}{1,3}
        size_t k = i;
        for (int taken = 0; taken < 3 && k < n; ++taken) {
            Char e = char_at(s, n, k);
            if (e.cls != kNumber) break;
            k += e.len;
        }
        return k;
    }
    size_t j = i;  //  ?[^\s\p{L}\p{N}]+[\r\n]*
    if (c.cp == ' ' && i + 1 < n && char_at(s, n, i + 1).cls == kOther) j = i + 1;
    if (j > i || c.cls == kOther) {
        size_t k = run_end(s, n, j, kOther);
        while (k < n && (s[k] == '\r' || s[k] == '\n')) ++k;
        return k;
    }
    // \s*[\r\n]+ : white space up to and including its last line break
    size_t k = run_end(s, n, i, kSpace);
    for (size_t p = k; p > i; --p)
        if (s[p - 1] == '\r' || s[p - 1] == '\n') return p;
    return space_run(s, n, i);
}

// Calls emit(begin, end) for each piece of text[0..n), in order; the pieces tile the text exactly.
template <class Emit>
void split(Pattern pattern, const unsigned char* s, size_t n, Emit&& emit) {
    size_t i = 0;
    while (i < n) {
        size_t end = pattern == kGPT2 ? gpt2_piece_end(s, n, i) : cl100k_piece_end(s, n, i);
        emit(i, end);
        i = end;
    }
}

}  // namespace tinyllm::bpe
