/*
 * mt_plugin -- a multi-threaded program that crashes inside a dlopen()ed
 * plugin, for crashkit's test cores.
 *
 *   mt_plugin [--threads N] [--plugin PATH] [--side FILE]
 *             [--bad-address ADDR] [--touch-mb MB] [--stack-kib KIB]
 *
 * - loads PATH (default: libplugin.so next to the executable) with dlopen()
 *   and finds plugin_process() with dlsym(); the plugin is NOT linked;
 * - optionally mallocs and touches MB MiB of heap (for truncated cores);
 * - threads get KIB KiB stacks (default 256) so that cores of many threads
 *   stay small (an untouched 8 MiB default stack is a sparse hole in the
 *   core, but still counts in its apparent size);
 * - starts N idle worker threads (default 4) that all block in
 *   pthread_cond_wait() on a condition that is never signalled, so they have
 *   identical stacks;
 * - waits until every worker (and the main thread) is asleep, then a separate
 *   "crasher" thread writes the ground truth to FILE (default
 *   crash-facts.json) and calls plugin_process() with the bad record pointer
 *   ADDR (default 0xdead0): SIGSEGV / SEGV_MAPERR at ADDR + 8 inside
 *   plugin_parse_record().
 *
 * Threads in the process: main + N workers + crasher = N + 2.
 * The facts file lists the crashing tid first, then main's, then workers'.
 *
 * Build: gcc -g -O2 -fno-omit-frame-pointer -pthread -o mt_plugin mt_plugin.c -ldl
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef uint64_t (*plugin_process_fn)(const void *record, unsigned count);
typedef size_t (*plugin_offset_fn)(void);

static pthread_mutex_t   mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t    started_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t    never_cond = PTHREAD_COND_INITIALIZER;
static int               started;

static int               nthreads = 4;
static pid_t            *worker_tids;
static pid_t             main_tid;
static const char       *side_path = "crash-facts.json";
static char              plugin_path[PATH_MAX + 32];
static uintptr_t         bad_address = 0xdead0;
static unsigned long     touch_mb;
static unsigned long     stack_kib = 256;
static volatile char    *ballast;

static plugin_process_fn plugin_process;
static plugin_offset_fn  plugin_record_length_offset;

static pid_t
my_gettid(void)
{
    return (pid_t) syscall(SYS_gettid);
}

static void
die(const char *what)
{
    fprintf(stderr, "mt_plugin: %s: %s\n", what, strerror(errno));
    exit(3);
}

static void *
idle_worker(void *arg)
{
    int idx = (int) (intptr_t) arg;

    pthread_mutex_lock(&mu);
    worker_tids[idx] = my_gettid();
    started++;
    pthread_cond_broadcast(&started_cond);

    for ( ;; ) {
        pthread_cond_wait(&never_cond, &mu);   /* never signalled */
    }

    return NULL;
}

/* state letter of /proc/self/task/TID/stat ('S' sleeping, 'R' running...) */
static char
task_state(pid_t tid)
{
    char  path[64], buf[512], *p;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int) tid);
    f = fopen(path, "r");
    if (f == NULL) {
        return '?';
    }
    if (fgets(buf, sizeof(buf), f) == NULL) {
        fclose(f);
        return '?';
    }
    fclose(f);
    p = strrchr(buf, ')');
    return (p != NULL && p[1] == ' ') ? p[2] : '?';
}

static void
wait_until_asleep(pid_t tid)
{
    struct timespec ts = { 0, 1000000 };   /* 1 ms */

    for (int i = 0; i < 2000 && task_state(tid) != 'S'; i++) {
        nanosleep(&ts, NULL);
    }
}

/* refuse to "crash" at an address that happens to be mapped */
static int
address_is_mapped(uintptr_t addr)
{
    char      line[512];
    uintptr_t lo, hi;
    FILE     *f = fopen("/proc/self/maps", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2
            && addr >= lo && addr < hi)
        {
            fclose(f);
            return 1;
        }
    }
    fclose(f);
    return 0;
}

static void
write_facts(pid_t crash_tid, uintptr_t fault_address)
{
    FILE *f = fopen(side_path, "w");

    if (f == NULL) {
        die(side_path);
    }

    fprintf(f, "{\n  \"pid\": %d,\n  \"ppid\": %d,\n  \"uid\": %d,\n",
            (int) getpid(), (int) getppid(), (int) getuid());
    fprintf(f, "  \"crash_tid\": %d,\n  \"main_tid\": %d,\n",
            (int) crash_tid, (int) main_tid);
    fprintf(f, "  \"tids\": [%d, %d", (int) crash_tid, (int) main_tid);
    for (int i = 0; i < nthreads; i++) {
        fprintf(f, ", %d", (int) worker_tids[i]);
    }
    fprintf(f, "],\n  \"threads\": %d,\n", nthreads + 2);
    fprintf(f, "  \"signal\": %d,\n  \"si_code\": 1,\n", SIGSEGV);
    fprintf(f, "  \"record_address\": %" PRIuPTR ",\n", bad_address);
    fprintf(f, "  \"fault_address\": %" PRIuPTR ",\n", fault_address);
    fprintf(f, "  \"plugin\": \"%s\",\n", plugin_path);
    fprintf(f, "  \"touch_mb\": %lu\n}\n", touch_mb);

    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) {
        die(side_path);
    }
}

static void *
crasher_thread(void *arg)
{
    pid_t     tid = my_gettid();
    uintptr_t fault_address;
    uint64_t  r;

    (void) arg;

    /* identical, settled stacks: every other thread is blocked */
    wait_until_asleep(main_tid);
    for (int i = 0; i < nthreads; i++) {
        wait_until_asleep(worker_tids[i]);
    }

    fault_address = bad_address + plugin_record_length_offset();
    if (address_is_mapped(fault_address)) {
        fprintf(stderr, "mt_plugin: address %#" PRIxPTR " is mapped\n",
                fault_address);
        exit(4);
    }

    write_facts(tid, fault_address);

    r = plugin_process((const void *) bad_address, 1);

    /* not reached */
    printf("survived: %" PRIu64 "\n", r);
    return NULL;
}

static void
default_plugin_path(void)
{
    char  exe[PATH_MAX];
    char *slash;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n < 0) {
        die("readlink /proc/self/exe");
    }
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    *slash = '\0';
    snprintf(plugin_path, sizeof(plugin_path), "%s/libplugin.so", exe);
}

static void
usage(void)
{
    fprintf(stderr, "usage: mt_plugin [--threads N] [--plugin PATH] "
            "[--side FILE] [--bad-address ADDR] [--touch-mb MB] "
            "[--stack-kib KIB]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    void           *h;
    pthread_t       t;
    pthread_attr_t  attr;

    default_plugin_path();

    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            usage();
        }
        if (strcmp(argv[i], "--threads") == 0) {
            nthreads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--plugin") == 0) {
            snprintf(plugin_path, sizeof(plugin_path), "%s", argv[++i]);
        } else if (strcmp(argv[i], "--side") == 0) {
            side_path = argv[++i];
        } else if (strcmp(argv[i], "--bad-address") == 0) {
            bad_address = (uintptr_t) strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--touch-mb") == 0) {
            touch_mb = strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--stack-kib") == 0) {
            stack_kib = strtoul(argv[++i], NULL, 0);
        } else {
            usage();
        }
    }
    if (nthreads < 1 || nthreads > 4096) {
        usage();
    }

    main_tid = my_gettid();

    if (touch_mb > 0) {
        size_t n = touch_mb << 20;

        ballast = malloc(n);
        if (ballast == NULL) {
            die("malloc");
        }
        memset((void *) ballast, 0xa5, n);
    }

    h = dlopen(plugin_path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "mt_plugin: dlopen: %s\n", dlerror());
        return 3;
    }
    plugin_process = (plugin_process_fn) dlsym(h, "plugin_process");
    plugin_record_length_offset =
        (plugin_offset_fn) dlsym(h, "plugin_record_length_offset");
    if (plugin_process == NULL || plugin_record_length_offset == NULL) {
        fprintf(stderr, "mt_plugin: dlsym: %s\n", dlerror());
        return 3;
    }

    worker_tids = calloc((size_t) nthreads, sizeof(pid_t));
    if (worker_tids == NULL) {
        die("calloc");
    }

    pthread_attr_init(&attr);
    errno = pthread_attr_setstacksize(&attr, stack_kib * 1024);
    if (errno != 0) {
        die("pthread_attr_setstacksize");
    }

    for (int i = 0; i < nthreads; i++) {
        errno = pthread_create(&t, &attr, idle_worker, (void *) (intptr_t) i);
        if (errno != 0) {
            die("pthread_create");
        }
        pthread_detach(t);
    }

    pthread_mutex_lock(&mu);
    while (started < nthreads) {
        pthread_cond_wait(&started_cond, &mu);
    }
    pthread_mutex_unlock(&mu);

    errno = pthread_create(&t, &attr, crasher_thread, NULL);
    if (errno != 0) {
        die("pthread_create");
    }
    pthread_join(t, NULL);

    return 1;   /* not reached: the crasher takes the process down */
}
