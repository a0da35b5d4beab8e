/*
 * bigmem -- mallocs and touches MB MiB (memset non-zero, so every page is
 * really in the core), writes its facts, then crashes with SIGSEGV in
 * bigmem_crash() (NULL->field at offset 8).  For crashkit's benchmark of
 * very large cores.
 *
 *   bigmem [--mb MB] [--side FILE]        (default 1100 MiB, crash-facts.json)
 *
 * Build: gcc -g -O2 -fno-omit-frame-pointer -o bigmem bigmem.c
 */

#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct bigmem_block {
    char        *base;
    size_t       size;          /* offset 8 */
};

static volatile char *ballast;

__attribute__((noinline, noclone)) size_t
bigmem_crash(const struct bigmem_block *b)
{
    return b->size + 1;
}

int
main(int argc, char **argv)
{
    unsigned long        mb = 1100;
    const char          *side = "crash-facts.json";
    struct bigmem_block *blk;
    FILE                *f;
    size_t               r;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--mb") == 0) {
            mb = strtoul(argv[i + 1], NULL, 0);
        } else if (strcmp(argv[i], "--side") == 0) {
            side = argv[i + 1];
        } else {
            fprintf(stderr, "usage: bigmem [--mb MB] [--side FILE]\n");
            return 2;
        }
    }

    ballast = malloc(mb << 20);
    if (ballast == NULL) {
        perror("malloc");
        return 3;
    }
    memset((void *) ballast, 0x5a, mb << 20);

    /* NULL at run time unless the environment says otherwise */
    blk = (struct bigmem_block *) (uintptr_t)
          strtoull(getenv("BIGMEM_BLOCK") ? getenv("BIGMEM_BLOCK") : "0",
                   NULL, 0);

    f = fopen(side, "w");
    if (f == NULL) {
        perror(side);
        return 3;
    }
    fprintf(f, "{\n  \"pid\": %d,\n  \"ppid\": %d,\n  \"uid\": %d,\n"
               "  \"tids\": [%d],\n  \"threads\": 1,\n"
               "  \"signal\": %d,\n  \"si_code\": 1,\n"
               "  \"fault_address\": %" PRIuPTR ",\n  \"mb\": %lu\n}\n",
            (int) getpid(), (int) getppid(), (int) getuid(),
            (int) syscall(SYS_gettid), SIGSEGV,
            (uintptr_t) blk + offsetof(struct bigmem_block, size), mb);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
        perror(side);
        return 3;
    }

    r = bigmem_crash(blk);

    printf("survived: %zu %d\n", r, ballast[0]);   /* not reached */
    return 1;
}
