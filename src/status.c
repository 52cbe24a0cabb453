/* status.c - status names, messages and the error-record formatter. */
#include "status.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
#define MR_X_NAME(code, name, msg) name,
    MR_STATUS_MAP(MR_X_NAME)
#undef MR_X_NAME
};

static const char *const status_messages[] = {
#define MR_X_MSG(code, name, msg) msg,
    MR_STATUS_MAP(MR_X_MSG)
#undef MR_X_MSG
};

const char *mr_status_name(mr_status s)
{
    if ((unsigned)s >= MR_STATUS_COUNT)
        return "unknown";
    return status_names[s];
}

const char *mr_status_message(mr_status s)
{
    if ((unsigned)s >= MR_STATUS_COUNT)
        return "unknown status";
    return status_messages[s];
}

void mr_error_clear(mr_error *err)
{
    if (!err)
        return;
    err->code = MR_OK;
    err->offset = MR_NO_OFFSET;
    err->msg[0] = '\0';
}

mr_status mr_fail(mr_error *err, mr_status code, const char *file,
                  const char *field, uint64_t offset, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->offset = offset;

    size_t cap = sizeof err->msg, n = 0;
    int w;
    err->msg[0] = '\0';
    if (file) {
        w = snprintf(err->msg + n, cap - n, "%s: ", file);
        n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
    }
    if (field) {
        w = snprintf(err->msg + n, cap - n, "%s", field);
        n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
        if (offset != MR_NO_OFFSET) {
            w = snprintf(err->msg + n, cap - n, " at offset %llu",
                         (unsigned long long)offset);
            n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
        }
        w = snprintf(err->msg + n, cap - n, ": ");
        n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
    } else if (offset != MR_NO_OFFSET) {
        w = snprintf(err->msg + n, cap - n, "offset %llu: ",
                     (unsigned long long)offset);
        n += (w > 0 && (size_t)w < cap - n) ? (size_t)w : 0;
    }
    if (fmt && n < cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg + n, cap - n, fmt, ap);
        va_end(ap);
    } else if (n < cap) {
        snprintf(err->msg + n, cap - n, "%s", mr_status_message(code));
    }
    return code;
}
