/*
 * errors.h: filling a c2_error, for the libraries built on the engine (the
 * engine itself, proto/, client/, daemon/). Internal: not installed.
 */
#ifndef C2I_ERRORS_H
#define C2I_ERRORS_H

#include "chroma2/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills err (may be NULL) with code and a printf message; returns code. */
int c2i_fail(c2_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
