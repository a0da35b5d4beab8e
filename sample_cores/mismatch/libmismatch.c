/*
 * libmismatch.so -- a shared library that is rebuilt after the crash.
 *
 * scripts/make-sample-cores builds it with -DMISMATCH_VERSION=1, runs
 * mismatch_main (linked against it) until it crashes in mismatch_checksum(),
 * then rebuilds it at the same path with -DMISMATCH_VERSION=2.  Version 2
 * has different code (an extra function placed first, another formula), so
 * the library on disk no longer matches the core: different build-id and
 * different symbol addresses.
 *
 * Build: gcc -g -O2 -fno-omit-frame-pointer -fPIC -shared \
 *            -Wl,-soname,libmismatch.so -DMISMATCH_VERSION=1 \
 *            -o libmismatch.so libmismatch.c
 */

#include <stddef.h>

#ifndef MISMATCH_VERSION
#define MISMATCH_VERSION 1
#endif

#define MISMATCH_NOINLINE  __attribute__((noinline, noclone))

struct mismatch_item {
    long         id;
    const char  *name;
    long         value;         /* offset 16 */
};

#if MISMATCH_VERSION >= 2
/* new in version 2: shifts every function after it */
MISMATCH_NOINLINE long
mismatch_normalize(long v, long scale)
{
    long r = 0;

    for (long i = 0; i < scale; i++) {
        r += (v ^ i) * 31 + (r >> 3);
    }

    return r;
}
#endif

size_t
mismatch_value_offset(void)
{
    return offsetof(struct mismatch_item, value);
}

const char *
mismatch_version(void)
{
#if MISMATCH_VERSION >= 2
    return "libmismatch 2";
#else
    return "libmismatch 1";
#endif
}

MISMATCH_NOINLINE long
mismatch_checksum(const struct mismatch_item *it)
{
#if MISMATCH_VERSION >= 2
    return mismatch_normalize(it->value, 7) + it->id * 13;
#else
    /* BUG: no validation of it */
    return it->value * 3 + 1;
#endif
}

MISMATCH_NOINLINE long
mismatch_compute(const struct mismatch_item *it, int n)
{
    long total = 0;

    for (int i = 0; i < n; i++) {
        total += mismatch_checksum(&it[i]);
    }

    /* work after the call: no tail call */
    return total + MISMATCH_VERSION;
}
