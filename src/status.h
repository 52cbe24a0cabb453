/* status.h - the library's status codes and error record.
 *
 * One X-macro list generates the enum, the names and the default messages
 * (the libuv UV_ERRNO_MAP habit).  Every fallible library function returns an
 * mr_status and, when it fails, fills an mr_error whose message names the
 * file, the field and the byte offset that caught the problem.  The library
 * never prints, exits or aborts on bad input: only src/cli/ does.
 */
#ifndef MOERUN_STATUS_H
#define MOERUN_STATUS_H

#include <stdarg.h>
#include <stdint.h>

/*    code          name              default message */
#define MR_STATUS_MAP(X)                                                     \
    X(OK,          "ok",            "success")                                \
    X(EINVAL,      "invalid",       "invalid argument")                       \
    X(EIO,         "io",            "input/output error")                     \
    X(EFORMAT,     "format",        "malformed file")                         \
    X(EUNSUPPORTED,"unsupported",   "unsupported feature")                    \
    X(ENOMEM,      "nomem",         "out of memory")                          \
    X(ECHECKSUM,   "checksum",      "checksum mismatch")                      \
    X(ERANGE,      "range",         "value out of range")

typedef enum {
#define MR_X_ENUM(code, name, msg) MR_##code,
    MR_STATUS_MAP(MR_X_ENUM)
#undef MR_X_ENUM
    MR_STATUS_COUNT
} mr_status;

/* Error record filled by failing calls.  msg is always NUL-terminated. */
typedef struct mr_error {
    mr_status code;
    uint64_t offset;   /* byte offset in the file, or UINT64_MAX if none */
    char msg[512];
} mr_error;

#define MR_NO_OFFSET UINT64_MAX

/* Short name of a status ("format"), never NULL. */
const char *mr_status_name(mr_status s);
/* Default one-line description of a status, never NULL. */
const char *mr_status_message(mr_status s);

/* Fill *err (which may be NULL) and return code.  The message reads
 * "FILE: FIELD at offset N: DETAIL" with the parts that are given (file,
 * field may be NULL; offset may be MR_NO_OFFSET). */
mr_status mr_fail(mr_error *err, mr_status code, const char *file,
                  const char *field, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Clear an error record to MR_OK. */
void mr_error_clear(mr_error *err);

#endif
