/*
 * errors.c: names and messages generated from the tables in engine.h
 * (C2_ERRNO_MAP, C2_FLAGS_MAP), and the internal error filler.
 */
#include <stdarg.h>
#include <stdio.h>

#include "geometry/geometry_int.h"

const char *c2_strerror(int code)
{
    switch (code) {
#define C2_ERR_STR(name, val, str) \
    case C2_##name:                \
        return str;
        C2_ERRNO_MAP(C2_ERR_STR)
#undef C2_ERR_STR
    }
    return "unknown error";
}

const char *c2_errname(int code)
{
    switch (code) {
#define C2_ERR_NAME(name, val, str) \
    case C2_##name:                 \
        return "C2_" #name;
        C2_ERRNO_MAP(C2_ERR_NAME)
#undef C2_ERR_NAME
    }
    return "C2_EUNKNOWN";
}

const char *c2_flag_name(uint32_t flag)
{
    switch (flag) {
#define C2_FLAG_NAME(name) \
    case C2_##name:        \
        return #name;
        C2_FLAGS_MAP(C2_FLAG_NAME)
#undef C2_FLAG_NAME
    }
    return NULL;
}

int c2i_fail(c2_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
