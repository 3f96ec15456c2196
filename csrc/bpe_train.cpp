// Training: learn merges from the counted pre-tokens ("words") of a corpus.
//
// The naive loop recounts every pair of every word after each merge. Here the pair counts are kept
// up to date instead: a merge of (a, b) only touches the words that contain (a, b), found through an
// index pair -> words. The next pair to merge comes from a max-heap of (count, pair). Counts only
// go down, except for pairs that contain the token just made, so the heap is updated lazily: an
// entry popped with an out-of-date count is pushed back with the current one, and pairs with the
// new token are pushed after each merge.
//
// Tie rule (determinism): the pair with the highest count wins; among equal counts, the smallest
// (left id, right id). Ids are byte values for bytes and 256 + i for merge i, so the merges depend
// only on the corpus and the settings, never on hash order, threads or machine.
#include <algorithm>
#include <queue>
#include <stdexcept>

#include "bpe.h"

namespace tinyllm::bpe {

void Trainer::add_piece(std::string_view piece, int64_t count) {
    if (!piece.empty()) counts_[std::string(piece)] += count;
}

void Trainer::add_text(std::string_view text) {
    if (pattern_ == kCustom) throw std::invalid_argument("a custom pattern is split in Python; use add_pieces");
    split(pattern_, reinterpret_cast<const unsigned char*>(text.data()), text.size(),
          [&](size_t begin, size_t end) { add_piece(text.substr(begin, end - begin)); });
}

std::vector<std::pair<int32_t, int32_t>> Trainer::train(size_t num_merges, int64_t min_frequency,
                                                        const std::function<void(size_t)>& progress) const {
    std::vector<std::vector<int32_t>> words;
    std::vector<int64_t> freq;
    words.reserve(counts_.size());
    for (const auto& [piece, count] : counts_) {
        words.emplace_back(piece.begin(), piece.end());
        for (auto& id : words.back()) id = static_cast<unsigned char>(id);
        freq.push_back(count);
    }

    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words that (may) contain it
    auto note = [&](uint64_t key, int32_t w) {
        auto& list = where[key];
        if (list.empty() || list.back() != w) list.push_back(w);
    };
    for (int32_t w = 0; w < int32_t(words.size()); ++w)
        for (size_t i = 0; i + 1 < words[w].size(); ++i) {
            uint64_t key = pair_key(words[w][i], words[w][i + 1]);
            pair_count[key] += freq[w];
            note(key, w);
        }

    struct Entry {
        int64_t count;
        uint64_t key;
        bool operator<(const Entry& o) const {  // "less urgent than": lower count, or same count and larger pair
            return count != o.count ? count < o.count : key > o.key;
        }
    };
    std::priority_queue<Entry> heap;
    for (const auto& [key, count] : pair_count) heap.push({count, key});

    std::vector<std::pair<int32_t, int32_t>> merges;
    std::vector<int32_t> merged_word;
    std::vector<uint64_t> fresh;  // pairs containing the new token
    while (merges.size() < num_merges && !heap.empty()) {
        Entry top = heap.top();
        heap.pop();
        int64_t current = pair_count[top.key];
        if (current != top.count) {  // out of date: re-queue with the true count
            if (current > 0) heap.push({current, top.key});
            continue;
        }
        if (top.count < min_frequency) break;
        const int32_t a = int32_t(top.key >> 32), b = int32_t(top.key & 0xFFFFFFFFu);
        const int32_t made = 256 + int32_t(merges.size());
        merges.emplace_back(a, b);
        fresh.clear();
        std::vector<int32_t> affected = std::move(where[top.key]);
        where.erase(top.key);
        for (int32_t w : affected) {
            std::vector<int32_t>& word = words[w];
            merged_word.clear();
            for (size_t i = 0; i < word.size(); ++i) {
                if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) {
                    merged_word.push_back(made);
                    ++i;
                } else {
                    merged_word.push_back(word[i]);
                }
            }
            if (merged_word.size() == word.size()) continue;  // stale index entry: (a, b) left this word
            for (size_t i = 0; i + 1 < word.size(); ++i) pair_count[pair_key(word[i], word[i + 1])] -= freq[w];
            for (size_t i = 0; i + 1 < merged_word.size(); ++i) {
                uint64_t key = pair_key(merged_word[i], merged_word[i + 1]);
                pair_count[key] += freq[w];
                if (merged_word[i] == made || merged_word[i + 1] == made) {
                    note(key, w);
                    fresh.push_back(key);
                }
            }
            word.swap(merged_word);
        }
        std::sort(fresh.begin(), fresh.end());
        fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
        for (uint64_t key : fresh) heap.push({pair_count[key], key});
        if (progress && merges.size() % 64 == 0) progress(merges.size());
    }
    if (progress) progress(merges.size());
    return merges;
}

}  // namespace tinyllm::bpe
