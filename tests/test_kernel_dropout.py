"""Dropout's counter-based random numbers: the Philox4x32-10 definition against the published
known-answer vectors, the C++ kernel bit for bit against it, and the properties dropout relies on."""
import numpy as np
import pytest

from kernel_checks import native, non_contiguous, poisoned_outputs, randn, requires_native  # noqa: F401
from tinyllm.backend import cpu, reference

# Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter (4 words), key (2), result (4).
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
# (seed, offset): small ones, and ones whose high 32-bit words are in use.
KEYS = [(0, 0), (12345, 7), (2**63 + 5, 2**32 - 3)]


@pytest.mark.parametrize("counter, key, expected", PHILOX_KAT)
def test_philox_matches_the_known_answers(counter, key, expected):
    words = reference.philox4x32(*(np.array([c], np.uint64) for c in counter), *key)
    assert [int(w[0]) for w in words] == list(expected)


def test_uniforms_are_the_counters_words_in_order():
    """Number i is word i % 4 of counter offset + i // 4, so a call that starts where another ended
    continues its sequence: the dropout stream hands out counters, never the same one twice."""
    seed = 99
    whole = reference.dropout_uniforms(40, seed, 5)
    np.testing.assert_array_equal(whole[:12], reference.dropout_uniforms(12, seed, 5))
    np.testing.assert_array_equal(whole[12:], reference.dropout_uniforms(28, seed, 8))
    word = reference.philox4x32(*(np.array([c], np.uint64) for c in (6, 0, 0, 0)), seed, 0)[2]
    assert whole[6] == np.float32(int(word[0]) >> 8) / 2**24


def test_uniforms_are_uniform():
    u = reference.dropout_uniforms(1 << 20, 3, 0)
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    counts = np.histogram(u, bins=16, range=(0.0, 1.0))[0]
    expected = u.size / 16
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # 5 standard deviations of a bin count
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(u.size)  # neighbours (words of one counter) unrelated


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_reference_drops_a_share_p_and_scales_the_rest(p):
    x = randn(np.random.default_rng(0), 1 << 18) + 5.0  # no zeros of its own
    y = reference.dropout(x, p, 7, 0)
    kept = y != 0
    assert abs(1 - kept.mean() - p) < 5 * np.sqrt(p * (1 - p) / x.size)
    np.testing.assert_array_equal(y[kept], x[kept] * np.float32(1 / (1 - p)))
    assert not np.array_equal(kept, reference.dropout(x, p, 7, x.size) != 0)  # the next counters: another mask
    assert not np.array_equal(kept, reference.dropout(x, p, 8, 0) != 0)  # another seed: another mask


def test_reference_keeps_the_dtype():
    x = np.linspace(1, 2, 64)
    assert reference.dropout(x, 0.5, 1, 0).dtype == np.float64
    assert reference.dropout(x.astype(np.float16), 0.5, 1, 0).dtype == np.float16


@requires_native
@pytest.mark.parametrize("n", [1, 3, 4, 17, 127, 4099, 1 << 18])
@pytest.mark.parametrize("seed, offset", KEYS)
def test_cpp_kernel_is_the_reference_bit_for_bit(n, seed, offset):
    x = randn(np.random.default_rng(n), n)
    with native("dropout"):
        y = cpu.dropout(x, 0.3, seed, offset)
    np.testing.assert_array_equal(y, reference.dropout(x, 0.3, seed, offset))


@requires_native
def test_cpp_kernel_on_non_contiguous_inputs():
    x = randn(np.random.default_rng(1), 4, 33, 65)
    transposed = x.transpose(2, 0, 1)
    expected = reference.dropout(x, 0.2, 5, 11), reference.dropout(np.ascontiguousarray(transposed), 0.2, 5, 11)
    with native("dropout"):
        got = cpu.dropout(non_contiguous(x), 0.2, 5, 11), cpu.dropout(transposed, 0.2, 5, 11)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
