/* core/il_rng.c: xoshiro256** (Blackman & Vigna), written from the published algorithm. */
#include "il_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void il_rng_seed(il_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t il_rng_next(il_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double il_rng_uniform(il_rng *r) { return (double)(il_rng_next(r) >> 11) * 0x1.0p-53; }

double il_rng_normal(il_rng *r) {
  double u1 = il_rng_uniform(r), u2 = il_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300; /* keep log finite */
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t il_rng_below(il_rng *r, uint64_t n) {
  /* rejection sampling removes modulo bias */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do v = il_rng_next(r); while (v >= limit);
  return v % n;
}

void il_rng_permutation(il_rng *r, size_t n, uint32_t *perm) {
  for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)il_rng_below(r, i);
    uint32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
}
