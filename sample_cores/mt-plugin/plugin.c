/*
 * libplugin.so -- a deliberately broken plugin for crashkit's test cores.
 *
 * Loaded by mt_plugin with dlopen()/dlsym() (never linked).  plugin_process()
 * hands the record pointer it was given to plugin_parse_record(), which reads
 * rec->length without checking the pointer: with a bad pointer P the fault
 * address is P + offsetof(struct plugin_record, length) (P + 8 on LP64).
 *
 * Build: gcc -g -O2 -fno-omit-frame-pointer -fPIC -shared -o libplugin.so plugin.c
 */

#include <stddef.h>
#include <stdint.h>

#define PLUGIN_NOINLINE  __attribute__((noinline, noclone))

struct plugin_record {
    uint32_t     type;
    uint32_t     flags;
    uint64_t     length;        /* offset 8 */
    const char  *payload;
};

/* Exported so the caller can state the exact fault address up front. */
size_t
plugin_record_length_offset(void)
{
    return offsetof(struct plugin_record, length);
}

PLUGIN_NOINLINE uint64_t
plugin_parse_record(const struct plugin_record *rec)
{
    /* BUG: no validation of rec */
    uint64_t len = rec->length;

    if (rec->flags & 1) {
        len += 16;
    }

    return len;
}

PLUGIN_NOINLINE uint64_t
plugin_process(const void *record, unsigned count)
{
    uint64_t total = 0;
    const struct plugin_record *rec = record;

    for (unsigned i = 0; i < count; i++) {
        total += plugin_parse_record(&rec[i]);
    }

    /* work after the call: keeps plugin_process' frame (no tail call) */
    return total * 3 + count;
}
