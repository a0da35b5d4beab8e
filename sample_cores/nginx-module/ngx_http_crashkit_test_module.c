/*
 * ngx_http_crashkit_test_module -- a DELIBERATELY BROKEN nginx module.
 *
 * It exists only to produce real nginx worker cores for crashkit's tests
 * (see scripts/make-sample-cores and sample_cores/README.md).  Never load it
 * on a server that matters.
 *
 *     location /null  { crashkit_crash null;  }   SIGSEGV, NULL->len (addr 0x10)
 *     location /libc  { crashkit_crash libc;  }   SIGSEGV inside libc (strlen(NULL))
 *     location /abort { crashkit_crash abort; }   SIGABRT via abort()
 *     location /hdrs  { crashkit_crash headers; } SIGSEGV in a function whose
 *                     arguments are the Authorization and Cookie values
 *     location /ok    { crashkit_crash none;  }   200 "ok"
 *
 * Before crashing, the module writes one line to error.log (level notice)
 * with the facts a test needs as ground truth, e.g.
 *
 *     crashkit: crashing mode=null pid=1234 function=crashkit_faulty_tag_length
 *               fault_address=0000000000000010
 *
 * (nginx's %p prints hex digits without "0x").
 *
 * The pointers that are dereferenced come from request headers that are
 * absent, so they are NULL at run time but gcc cannot prove it (a provable
 * NULL dereference would be compiled to ud2 and give SIGILL instead).
 * The exported functions are interposable symbols of a -fPIC shared object,
 * so gcc does not inline or clone them; the noinline/noclone attributes make
 * that explicit.  Every call whose frame must appear in the backtrace is
 * followed by more work, so it is never turned into a tail call.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <stdlib.h>
#include <string.h>


#define CRASHKIT_NOINLINE  __attribute__((noinline, noclone))

#define CRASHKIT_MODE_NONE   0
#define CRASHKIT_MODE_NULL   1
#define CRASHKIT_MODE_LIBC   2
#define CRASHKIT_MODE_ABORT  3
#define CRASHKIT_MODE_HEADERS 4
#define CRASHKIT_MODE_CORRUPT 5

#define CRASHKIT_MAGIC       0x6b736863UL   /* "chsk" */


typedef struct {
    ngx_uint_t   mode;
} ngx_http_crashkit_loc_conf_t;


/* offsetof(crashkit_tag_t, len) == 16 on LP64 */
typedef struct {
    u_char      *name;
    void        *owner;
    size_t       len;
} crashkit_tag_t;


typedef struct {
    ngx_uint_t   magic;
    ngx_uint_t   requests;
} crashkit_state_t;


/* non-static: visible in .dynsym even in a stripped copy */
size_t crashkit_faulty_tag_length(crashkit_tag_t *tag);
size_t crashkit_copy_header(ngx_http_request_t *r, u_char *dst,
    const u_char *src);
void crashkit_check_invariant(ngx_http_request_t *r, crashkit_state_t *st);

static char *ngx_http_crashkit_crash(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_crashkit_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_crashkit_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_crashkit_handler(ngx_http_request_t *r);


static ngx_command_t  ngx_http_crashkit_commands[] = {

    { ngx_string("crashkit_crash"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_crashkit_crash,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_crashkit_test_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_crashkit_create_loc_conf,     /* create location configuration */
    ngx_http_crashkit_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_crashkit_test_module = {
    NGX_MODULE_V1,
    &ngx_http_crashkit_test_module_ctx,    /* module context */
    ngx_http_crashkit_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* Value of request header `name`, or NULL when the request has none. */
static CRASHKIT_NOINLINE ngx_table_elt_t *
crashkit_find_header(ngx_http_request_t *r, const char *name)
{
    size_t            n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == n
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, n) == 0)
        {
            return &h[i];
        }
    }

    return NULL;
}


/* BUG: trusts that a tag was found.  NULL->len faults at address 0x10. */
CRASHKIT_NOINLINE size_t
crashkit_faulty_tag_length(crashkit_tag_t *tag)
{
    return tag->len;
}


/* static helper in the call chain: only in .symtab, never in .dynsym */
static CRASHKIT_NOINLINE ngx_int_t
crashkit_parse_tag(ngx_http_request_t *r)
{
    size_t            len;
    crashkit_tag_t   *tag;
    ngx_table_elt_t  *h;

    h = crashkit_find_header(r, "X-Crashkit-Tag");

    /* "tag" is NULL at run time: the request carries no X-Crashkit-Tag */
    tag = (h != NULL) ? (crashkit_tag_t *) h->value.data : NULL;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "crashkit: crashing mode=null pid=%P "
                  "function=crashkit_faulty_tag_length fault_address=%p",
                  ngx_pid, (void *) ((uintptr_t) tag
                                     + offsetof(crashkit_tag_t, len)));

    len = crashkit_faulty_tag_length(tag);

    /* work after the call: keeps this frame (no tail call) */
    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "crashkit: tag length %uz", len);

    return (ngx_int_t) len;
}


/* BUG: copies a header value that may be absent: strlen(NULL) in libc. */
CRASHKIT_NOINLINE size_t
crashkit_copy_header(ngx_http_request_t *r, u_char *dst, const u_char *src)
{
    size_t  n;

    n = strlen((const char *) src);
    ngx_memcpy(dst, src, n);
    dst[n] = '\0';

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "crashkit: copied %uz bytes", n);

    return n;
}


/*
 * BUG: looks the session up through a table pointer that was never set.
 * Built without optimization so that gdb shows its arguments: the request's
 * Authorization and Cookie values, which a bug report must not carry.
 */
CRASHKIT_NOINLINE __attribute__((optimize("O0"))) size_t
crashkit_session_lookup(ngx_http_request_t *r, const u_char *authorization,
    const u_char *cookie)
{
    crashkit_tag_t *volatile  table = NULL;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "crashkit: crashing mode=headers pid=%P "
                  "function=crashkit_session_lookup", ngx_pid);

    return table->len + (authorization ? authorization[0] : 0)
           + (cookie ? cookie[0] : 0);
}


CRASHKIT_NOINLINE void
crashkit_check_invariant(ngx_http_request_t *r, crashkit_state_t *st)
{
    if (st->magic != CRASHKIT_MAGIC) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "crashkit: crashing mode=abort pid=%P "
                      "function=crashkit_check_invariant sender_pid=%P "
                      "magic=%ui", ngx_pid, ngx_pid, st->magic);
        abort();
    }

    st->requests++;
}


static ngx_int_t
ngx_http_crashkit_send(ngx_http_request_t *r, u_char *text, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "text/plain");

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = text;
    b->last = text + len;
    b->memory = 1;
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_crashkit_handler(ngx_http_request_t *r)
{
    u_char                        *buf;
    ngx_int_t                      rc;
    ngx_table_elt_t               *h;
    crashkit_state_t              *st;
    ngx_http_crashkit_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_crashkit_test_module);

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    switch (clcf->mode) {

    case CRASHKIT_MODE_NULL:
        rc = crashkit_parse_tag(r);
        break;

    case CRASHKIT_MODE_LIBC:
        buf = ngx_pnalloc(r->pool, 256);
        if (buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h = crashkit_find_header(r, "X-Crashkit-Value");

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "crashkit: crashing mode=libc pid=%P "
                      "function=strlen caller=crashkit_copy_header "
                      "fault_address=%p",
                      ngx_pid, (void *) (h ? h->value.data : NULL));

        rc = (ngx_int_t) crashkit_copy_header(r, buf,
                                              h ? h->value.data : NULL);
        break;

    case CRASHKIT_MODE_HEADERS:
        h = crashkit_find_header(r, "Authorization");
        buf = h ? h->value.data : NULL;
        h = crashkit_find_header(r, "Cookie");
        rc = (ngx_int_t) crashkit_session_lookup(r, buf, h ? h->value.data : NULL);
        break;

    case CRASHKIT_MODE_CORRUPT:
        /*
         * BUG: adds a response header whose name points nowhere, and returns.
         * nginx's own header filter crashes on it later, with this module no
         * longer on the stack: the crash is in nginx's code.
         */
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        h->key.len = sizeof("X-Crashkit") - 1;
        h->key.data = (u_char *) 0x10;
        ngx_str_set(&h->value, "1");

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "crashkit: crashing mode=corrupt pid=%P "
                      "function=ngx_http_header_filter", ngx_pid);

        /* nginx's finalization sends the 204 and its headers, after this returns */
        return NGX_HTTP_NO_CONTENT;

    case CRASHKIT_MODE_ABORT:
        /* pcalloc: magic is 0, the invariant "magic == CRASHKIT_MAGIC" fails */
        st = ngx_pcalloc(r->pool, sizeof(crashkit_state_t));
        if (st == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        crashkit_check_invariant(r, st);
        rc = (ngx_int_t) st->requests;
        break;

    default:
        rc = 0;
        break;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "crashkit: mode %ui survived (%i)", clcf->mode, rc);

    return ngx_http_crashkit_send(r, (u_char *) "ok\n", 3);
}


static char *
ngx_http_crashkit_crash(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_crashkit_loc_conf_t *ckcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (ckcf->mode != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "null") == 0) {
        ckcf->mode = CRASHKIT_MODE_NULL;

    } else if (ngx_strcmp(value[1].data, "libc") == 0) {
        ckcf->mode = CRASHKIT_MODE_LIBC;

    } else if (ngx_strcmp(value[1].data, "headers") == 0) {
        ckcf->mode = CRASHKIT_MODE_HEADERS;

    } else if (ngx_strcmp(value[1].data, "abort") == 0) {
        ckcf->mode = CRASHKIT_MODE_ABORT;

    } else if (ngx_strcmp(value[1].data, "corrupt") == 0) {
        ckcf->mode = CRASHKIT_MODE_CORRUPT;

    } else if (ngx_strcmp(value[1].data, "none") == 0) {
        ckcf->mode = CRASHKIT_MODE_NONE;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, "
                           "it must be \"null\", \"libc\", \"headers\", "
                           "\"abort\", \"corrupt\" or \"none\"", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_crashkit_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_crashkit_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_crashkit_loc_conf_t  *conf;

    conf = ngx_palloc(cf->pool, sizeof(ngx_http_crashkit_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->mode = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_crashkit_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_crashkit_loc_conf_t *prev = parent;
    ngx_http_crashkit_loc_conf_t *conf = child;

    ngx_conf_merge_uint_value(conf->mode, prev->mode, CRASHKIT_MODE_NONE);

    return NGX_CONF_OK;
}
