/* core/il_prec.h: one source, two precisions.
 * Every precision-dependent file is compiled twice, with IL_PREC=32 (float,
 * training and benchmarks) and IL_PREC=64 (double, gradient checks). Public
 * symbols get a _f32/_f64 suffix through IL_P() so both builds link into one
 * program, like FFTW's fftwf_/fftw_ prefixes. */
#ifndef IL_PREC_H
#define IL_PREC_H

#ifndef IL_PREC
#define IL_PREC 32
#endif

#if IL_PREC == 32
typedef float il_real;
#define IL_SUFFIX _f32
#define IL_REAL_NAME "float32"
#define IL_EPS 1.1920929e-07
#elif IL_PREC == 64
typedef double il_real;
#define IL_SUFFIX _f64
#define IL_REAL_NAME "float64"
#define IL_EPS 2.220446049250313e-16
#else
#error "IL_PREC must be 32 or 64"
#endif

#define IL_PASTE2_(a, b) a##b
#define IL_PASTE_(a, b) IL_PASTE2_(a, b)
#define IL_P(name) IL_PASTE_(name, IL_SUFFIX)

#endif
