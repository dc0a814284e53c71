/* The rANS loops of rans.py in C, symbol by symbol: the same streams, byte for byte.

   rans.py stays the reference and the fallback; this file only replaces its two loops, where
   numpy spends its time on per-call overhead. Loaded with ctypes (no Python headers), built
   by setuptools as an optional extension: where no compiler exists, nothing changes but speed.
   Arrays come from numpy, contiguous, checked by the caller.

   Both loops read a symbol's interval from one 32-bit word, packed[k] = start | (freq - 1)
   << 16 for flat symbol k (table * width + symbol): start < 2**16 and freq <= 2**16 for every
   real symbol. One word rather than two int64 gathers keeps a model's tables within the
   cache (460 KB for y's), which is most of the speed. */
#include <stdint.h>

#define PRECISION 16
#define STATE_LOW (1u << 16)

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

/* Codes the n flat symbols over `lanes` interleaved states. out gets 2 * lanes head words and
   then the body; out must hold 2 * lanes + n words (a symbol gives out at most one word).
   Returns the number of words written. scratch: n words. */
EXPORT int64_t aedge_rans_encode(const int64_t *flat, const uint32_t *packed, int64_t n,
                                 int64_t lanes, uint16_t *out, uint16_t *scratch,
                                 uint32_t *state) {
    int64_t emitted = 0;
    for (int64_t l = 0; l < lanes; l++) state[l] = STATE_LOW;
    /* Backwards, as rANS must; symbol i belongs to lane i % lanes. The words come out in the
       reverse of the order the decoder reads them. */
    int64_t l = n > 0 ? (n - 1) % lanes : 0;
    for (int64_t i = n - 1; i >= 0; i--) {
        uint32_t p = packed[flat[i]];
        uint32_t freq = (p >> 16) + 1, start = p & 0xFFFF;
        uint32_t x = state[l];
        if ((uint64_t)x >= ((uint64_t)freq << 16)) {  /* a one-symbol table has freq 2**16 */
            scratch[emitted++] = (uint16_t)(x & 0xFFFF);
            x >>= 16;
        }
        state[l] = ((x / freq) << PRECISION) + (x % freq) + start;
        if (--l < 0) l = lanes - 1;
    }
    for (int64_t k = 0; k < lanes; k++) {
        out[2 * k] = (uint16_t)(state[k] & 0xFFFF);
        out[2 * k + 1] = (uint16_t)(state[k] >> 16);
    }
    for (int64_t k = 0; k < emitted; k++) out[2 * lanes + k] = scratch[emitted - 1 - k];
    return 2 * lanes + emitted;
}

/* The inverse: symbols_out[i] gets symbol i of table table[i]. A slot is found in two steps:
   coarse[table << (16 - shift) | slot >> shift] is the flat symbol holding the first slot of
   its bucket, and the symbols after it are walked until one holds the slot: fewer than
   2**shift steps, seldom more than one. A full table of 2**16 slots per table would take
   42 MB for a model and miss the cache on almost every symbol.
   Returns 0, or -1 (truncated) or -2 (the states did not come back to the start, or words
   were left over). */
EXPORT int aedge_rans_decode(const uint16_t *words, int64_t nwords, const int64_t *table,
                             const int32_t *coarse, int32_t shift, const uint32_t *packed,
                             int64_t width, int64_t n, int64_t lanes, int64_t *symbols_out,
                             uint32_t *state) {
    int64_t pos = 2 * lanes;
    if (nwords < pos) return -1;
    for (int64_t l = 0; l < lanes; l++) {
        state[l] = (uint32_t)words[2 * l] | ((uint32_t)words[2 * l + 1] << 16);
        if (state[l] < STATE_LOW) return -2;
    }
    int64_t l = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t x = state[l];
        uint32_t slot = x & ((1u << PRECISION) - 1);
        int64_t k = coarse[(table[i] << (PRECISION - shift)) | (slot >> shift)];
        uint32_t p = packed[k];
        /* The last symbol of a table ends at 2**16, past every slot: the walk stops there. */
        while ((p & 0xFFFF) + (p >> 16) < slot) p = packed[++k];
        symbols_out[i] = k - table[i] * width;
        x = ((p >> 16) + 1) * (x >> PRECISION) + slot - (p & 0xFFFF);
        if (x < STATE_LOW) {
            if (pos >= nwords) return -1;
            x = (x << 16) | words[pos++];
        }
        state[l] = x;
        if (++l == lanes) l = 0;
    }
    if (pos != nwords) return -2;
    for (int64_t k = 0; k < lanes; k++)
        if (state[k] != STATE_LOW) return -2;
    return 0;
}
