// Byte-level BPE: the trainer and the encoder behind tinyllm/tokenizer/bpe.py.
//
// Tokens are ids; every one of the 256 byte values has an id, and each merge (left, right) -> merged
// turns two adjacent ids into one. A merge's rank is its position in the merge list: lower ranks
// were learned first and are applied first. The Python side owns the vocabulary (id -> bytes),
// special tokens and files; this side only splits text, counts, merges and looks up.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bpe_split.h"

namespace tinyllm::bpe {

// A fast hash of a byte string (8 bytes at a time, then a 64-bit finaliser); never returns 0.
uint64_t hash_bytes(const unsigned char* s, size_t n);

inline uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Remembers the ids of pieces already encoded: most text repeats a few thousand words, so after a
// warm-up nearly every piece is one hash lookup. Open addressing with linear probing; keys and ids
// live in two flat arrays. When it holds `max_entries` pieces it simply starts over.
class PieceCache {
  public:
    explicit PieceCache(size_t max_entries = size_t(1) << 17);
    // The ids cached for `piece` (with hash h), or nullptr; *count gets how many.
    const int32_t* find(std::string_view piece, uint64_t h, uint32_t* count) const;
    void insert(std::string_view piece, uint64_t h, const int32_t* ids, uint32_t count);

  private:
    struct Slot {
        uint64_t hash = 0;  // 0: empty
        uint32_t key_off, key_len, val_off, val_len;
    };
    void clear(size_t capacity);
    std::vector<Slot> slots_;
    std::string keys_;
    std::vector<int32_t> values_;
    size_t size_ = 0, max_entries_;
};

class Encoder {
  public:
    // byte_ids[b]: the id of the single-byte token b. merges[r] = {left, right, merged} has rank r.
    Encoder(const std::vector<int32_t>& byte_ids, const std::vector<std::array<int32_t, 3>>& merges,
            Pattern pattern);
    // Appends the ids of `text`, pre-tokenized with the built-in pattern.
    void encode(std::string_view text, PieceCache& cache, std::vector<int32_t>& out) const;
    // Appends the ids of one pre-token.
    void encode_piece(std::string_view piece, PieceCache& cache, std::vector<int32_t>& out) const;
    Pattern pattern() const { return pattern_; }

  private:
    void merge(std::string_view piece, std::vector<int32_t>& out) const;
    // Rank and merged id of the pair (left, right), or false when they do not merge.
    bool lookup(int32_t left, int32_t right, uint32_t* rank, int32_t* merged) const;

    std::array<int32_t, 256> byte_ids_;
    std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges_;  // pair -> (rank, merged id)
    Pattern pattern_;
};

class Trainer {
  public:
    explicit Trainer(Pattern pattern) : pattern_(pattern) {}
    // Pre-tokenizes `text` with the built-in pattern and counts its pieces.
    void add_text(std::string_view text);
    void add_piece(std::string_view piece, int64_t count = 1);
    size_t num_words() const { return counts_.size(); }
    // Learns up to `num_merges` merges, each of a pair seen at least `min_frequency` times. The merge
    // i creates token 256 + i from the pair it returns; pairs are over byte ids 0..255 and earlier
    // merges. `progress(done)` is called now and then.
    std::vector<std::pair<int32_t, int32_t>> train(size_t num_merges, int64_t min_frequency,
                                                   const std::function<void(size_t)>& progress) const;

  private:
    Pattern pattern_;
    std::unordered_map<std::string, int64_t> counts_;  // pre-token bytes -> occurrences
};

}  // namespace tinyllm::bpe
