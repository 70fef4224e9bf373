/* core/il_rng.h: reproducible random numbers (xoshiro256** seeded by splitmix64).
 * The same seed gives the same stream on every platform and rank. */
#ifndef IL_RNG_H
#define IL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct il_rng { uint64_t s[4]; } il_rng;

void il_rng_seed(il_rng *r, uint64_t seed);
uint64_t il_rng_next(il_rng *r);
double il_rng_uniform(il_rng *r);            /* [0, 1) with 53 random bits */
double il_rng_normal(il_rng *r);             /* standard normal (Box-Muller) */
uint64_t il_rng_below(il_rng *r, uint64_t n); /* unbiased integer in [0, n) */
void il_rng_permutation(il_rng *r, size_t n, uint32_t *perm); /* Fisher-Yates */

#endif
