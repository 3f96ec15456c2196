// Encoding: split text into pieces, then merge the bytes of each piece by rank (with a cache).
#include <algorithm>
#include <cstring>
#include <queue>
#include <stdexcept>

#include "bpe.h"

namespace tinyllm::bpe {

uint64_t hash_bytes(const unsigned char* s, size_t n) {
    auto mix = [](uint64_t x) {  // splitmix64 finaliser
        x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ull;
        x ^= x >> 27; x *= 0x94D049BB133111EBull;
        return x ^ (x >> 31);
    };
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        std::memcpy(&w, s, 8);
        h = mix(h ^ w);
    }
    uint64_t w = 0;
    std::memcpy(&w, s, n);
    h = mix(h ^ w);
    return h | 1;
}

PieceCache::PieceCache(size_t max_entries) : max_entries_(max_entries) { clear(1024); }

void PieceCache::clear(size_t capacity) {
    slots_.assign(capacity, Slot{});
    keys_.clear();
    values_.clear();
    size_ = 0;
}

const int32_t* PieceCache::find(std::string_view piece, uint64_t h, uint32_t* count) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const Slot& s = slots_[i];
        if (s.hash == 0) return nullptr;
        if (s.hash == h && s.key_len == piece.size() &&
            std::memcmp(keys_.data() + s.key_off, piece.data(), piece.size()) == 0) {
            *count = s.val_len;
            return values_.data() + s.val_off;
        }
    }
}

void PieceCache::insert(std::string_view piece, uint64_t h, const int32_t* ids, uint32_t count) {
    if (size_ >= max_entries_) clear(slots_.size());
    if (2 * (size_ + 1) > slots_.size()) {  // keep the table at most half full: rehash into twice the slots
        std::vector<Slot> old(slots_.size() * 2);
        old.swap(slots_);
        size_t mask = slots_.size() - 1;
        for (const Slot& s : old) {
            if (s.hash == 0) continue;
            size_t i = s.hash & mask;
            while (slots_[i].hash != 0) i = (i + 1) & mask;
            slots_[i] = s;
        }
    }
    size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = {h, uint32_t(keys_.size()), uint32_t(piece.size()), uint32_t(values_.size()), count};
    keys_.append(piece);
    values_.insert(values_.end(), ids, ids + count);
    ++size_;
}

Encoder::Encoder(const std::vector<int32_t>& byte_ids, const std::vector<std::array<int32_t, 3>>& merges,
                 Pattern pattern)
    : pattern_(pattern) {
    if (byte_ids.size() != 256) throw std::invalid_argument("byte_ids must have 256 entries");
    std::copy(byte_ids.begin(), byte_ids.end(), byte_ids_.begin());
    merges_.reserve(merges.size() * 2);
    for (size_t r = 0; r < merges.size(); ++r) {
        const auto& m = merges[r];
        // A pair listed twice keeps its first (lowest) rank, as in GPT-2 and Hugging Face.
        merges_.emplace(pair_key(m[0], m[1]), std::make_pair(uint32_t(r), m[2]));
    }
}

bool Encoder::lookup(int32_t left, int32_t right, uint32_t* rank, int32_t* merged) const {
    auto it = merges_.find(pair_key(left, right));
    if (it == merges_.end()) return false;
    *rank = it->second.first;
    *merged = it->second.second;
    return true;
}

// Merges the bytes of one piece: repeatedly merge the adjacent pair of lowest rank (leftmost first
// among equal ranks) until no pair merges. The symbols form a linked list and the candidate pairs a
// min-heap keyed by (rank, position), so a piece of n bytes costs O(n log n) even when it is a
// 10 MB run of spaces. A heap entry may be stale (its symbols merged since); it is checked when popped.
void Encoder::merge(std::string_view piece, std::vector<int32_t>& out) const {
    const size_t n = piece.size();
    if (n > size_t(INT32_MAX)) throw std::length_error("a single pre-token of 2 GB or more cannot be encoded");
    struct Sym { int32_t id, prev, next; };
    thread_local std::vector<Sym> syms;
    thread_local std::vector<uint64_t> heap;  // (rank << 32) | position, smallest on top
    syms.resize(n);
    heap.clear();
    auto push_pair = [&](int32_t pos) {
        uint32_t rank;
        int32_t merged;
        if (pos >= 0 && syms[pos].next >= 0 && lookup(syms[pos].id, syms[syms[pos].next].id, &rank, &merged)) {
            heap.push_back((uint64_t(rank) << 32) | uint32_t(pos));
            std::push_heap(heap.begin(), heap.end(), std::greater<>());
        }
    };
    for (size_t i = 0; i < n; ++i)
        syms[i] = {byte_ids_[static_cast<unsigned char>(piece[i])], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1};
    for (size_t i = 0; i + 1 < n; ++i) push_pair(int32_t(i));
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<>());
        uint64_t top = heap.back();
        heap.pop_back();
        int32_t pos = int32_t(top & 0xFFFFFFFFu), next = syms[pos].next;
        uint32_t rank;
        int32_t merged;
        if (syms[pos].id < 0 || next < 0 || !lookup(syms[pos].id, syms[next].id, &rank, &merged) ||
            rank != (top >> 32))
            continue;  // stale
        syms[pos].id = merged;
        syms[next].id = -1;
        syms[pos].next = syms[next].next;
        if (syms[pos].next >= 0) syms[syms[pos].next].prev = pos;
        push_pair(syms[pos].prev);
        push_pair(pos);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

void Encoder::encode_piece(std::string_view piece, PieceCache& cache, std::vector<int32_t>& out) const {
    if (piece.size() == 1) {
        out.push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
        return;
    }
    constexpr size_t kMaxCached = 64;  // long pieces are rare; caching them would only evict others
    if (piece.size() > kMaxCached) return merge(piece, out);
    uint64_t h = hash_bytes(reinterpret_cast<const unsigned char*>(piece.data()), piece.size());
    uint32_t count;
    if (const int32_t* ids = cache.find(piece, h, &count)) {
        out.insert(out.end(), ids, ids + count);
        return;
    }
    size_t start = out.size();
    merge(piece, out);
    cache.insert(piece, h, out.data() + start, uint32_t(out.size() - start));
}

void Encoder::encode(std::string_view text, PieceCache& cache, std::vector<int32_t>& out) const {
    if (pattern_ == kCustom) throw std::invalid_argument("a custom pattern is split in Python; use encode_pieces");
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    split(pattern_, s, text.size(), [&](size_t begin, size_t end) {
        encode_piece(text.substr(begin, end - begin), cache, out);
    });
}

}  // namespace tinyllm::bpe
