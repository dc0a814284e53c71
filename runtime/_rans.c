/* The rANS loops of rans.py in C, symbol by symbol: the same streams, byte for byte.

   rans.py stays the reference and the fallback; this file only replaces its two loops, where
   numpy spends its time on per-call overhead. Loaded with ctypes (no Python headers), built
   by setuptools as an optional extension: where no compiler exists, nothing changes but speed.
   Arrays come from numpy, contiguous, checked by the caller. */
#include <stdint.h>

#define PRECISION 16
#define STATE_LOW (1u << 16)

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

/* Codes n symbols given as (freq, start) pairs over `lanes` interleaved states. out gets
   2 * lanes head words and then the body; out must hold 2 * lanes + n words (a symbol gives out
   at most one word). Returns the number of words written. scratch: n words. */
EXPORT int64_t aedge_rans_encode(const int64_t *freq, const int64_t *start, int64_t n,
                                 int64_t lanes, uint16_t *out, uint16_t *scratch,
                                 uint32_t *state) {
    int64_t emitted = 0;
    for (int64_t l = 0; l < lanes; l++) state[l] = STATE_LOW;
    /* Backwards, as rANS must; symbol i belongs to lane i % lanes. The words come out in the
       reverse of the order the decoder reads them. */
    for (int64_t i = n - 1; i >= 0; i--) {
        int64_t l = i % lanes;
        uint64_t x = state[l];
        uint64_t f = (uint64_t)freq[i];
        if (x >= (f << 16)) {
            scratch[emitted++] = (uint16_t)(x & 0xFFFF);
            x >>= 16;
        }
        state[l] = (uint32_t)(((x / f) << PRECISION) + (x % f) + (uint64_t)start[i]);
    }
    for (int64_t l = 0; l < lanes; l++) {
        out[2 * l] = (uint16_t)(state[l] & 0xFFFF);
        out[2 * l + 1] = (uint16_t)(state[l] >> 16);
    }
    for (int64_t k = 0; k < emitted; k++) out[2 * lanes + k] = scratch[emitted - 1 - k];
    return 2 * lanes + emitted;
}

/* The inverse: flat_out[i] gets the flat index (table * width + symbol) of symbol i.
   key[i] is table_index[i] << 16; lut maps key + slot to a flat index; freq and start are the
   flat tables. Returns 0, or -1 (truncated) or -2 (the states did not come back to the start,
   or words were left over). */
EXPORT int aedge_rans_decode(const uint16_t *words, int64_t nwords, const int64_t *key,
                             const int32_t *lut, const int64_t *freq, const int64_t *start,
                             int64_t n, int64_t lanes, int64_t *flat_out, uint32_t *state) {
    int64_t pos = 2 * lanes;
    if (nwords < pos) return -1;
    for (int64_t l = 0; l < lanes; l++) {
        state[l] = (uint32_t)words[2 * l] | ((uint32_t)words[2 * l + 1] << 16);
        if (state[l] < STATE_LOW) return -2;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t l = i % lanes;
        uint64_t x = state[l];
        uint64_t slot = x & ((1u << PRECISION) - 1);
        int64_t found = lut[key[i] + (int64_t)slot];
        flat_out[i] = found;
        x = (uint64_t)freq[found] * (x >> PRECISION) + slot - (uint64_t)start[found];
        if (x < STATE_LOW) {
            if (pos >= nwords) return -1;
            x = (x << 16) | words[pos++];
        }
        state[l] = (uint32_t)x;
    }
    if (pos != nwords) return -2;
    for (int64_t l = 0; l < lanes; l++)
        if (state[l] != STATE_LOW) return -2;
    return 0;
}
