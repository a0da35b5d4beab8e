/*
 * mismatch_main -- linked (at link time, -L/-rpath) against libmismatch.so;
 * crashes inside it: mismatch_compute() -> mismatch_checksum() reads
 * it->value through a NULL item pointer (fault address 0x10 on LP64).
 *
 *   mismatch_main [--side FILE] [--item ADDR]
 *
 * Before crashing it writes FILE (default crash-facts.json) with its pid,
 * tid and the exact fault address.
 *
 * Build: gcc -g -O2 -fno-omit-frame-pointer -o mismatch_main mismatch_main.c \
 *            -L LIBDIR -Wl,-rpath,LIBDIR -lmismatch
 */

#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct mismatch_item;

long mismatch_compute(const struct mismatch_item *it, int n);
size_t mismatch_value_offset(void);
const char *mismatch_version(void);

int
main(int argc, char **argv)
{
    const char *side = "crash-facts.json";
    uintptr_t   item = 0;     /* NULL unless --item says otherwise */
    uintptr_t   fault;
    FILE       *f;
    long        r;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--side") == 0) {
            side = argv[i + 1];
        } else if (strcmp(argv[i], "--item") == 0) {
            item = (uintptr_t) strtoull(argv[i + 1], NULL, 0);
        } else {
            fprintf(stderr, "usage: mismatch_main [--side FILE] [--item ADDR]\n");
            return 2;
        }
    }

    fault = item + mismatch_value_offset();

    f = fopen(side, "w");
    if (f == NULL) {
        perror(side);
        return 3;
    }
    fprintf(f, "{\n  \"pid\": %d,\n  \"ppid\": %d,\n  \"uid\": %d,\n"
               "  \"tids\": [%d],\n  \"threads\": 1,\n"
               "  \"signal\": %d,\n  \"si_code\": 1,\n"
               "  \"fault_address\": %" PRIuPTR ",\n"
               "  \"library_version\": \"%s\"\n}\n",
            (int) getpid(), (int) getppid(), (int) getuid(),
            (int) syscall(SYS_gettid), SIGSEGV, fault, mismatch_version());
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
        perror(side);
        return 3;
    }

    r = mismatch_compute((const struct mismatch_item *) item, 1);

    printf("survived: %ld\n", r);   /* not reached */
    return 1;
}
