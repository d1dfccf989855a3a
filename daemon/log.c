/*
 * log.c: levelled log lines on stderr, one write each so lines from
 * different threads do not interleave. Under systemd stderr goes to the
 * journal, which adds its own time stamps; the "<N>" prefix is the syslog
 * priority that journald reads (sd-daemon(3)).
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "daemon.h"

int c2d_log_level = C2D_LOG_INFO;

void c2d_log_write(int level, const char *fmt, ...)
{
    static const int prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
    static const char *const name[] = {"error", "warn", "info", "debug"};
    char line[1024];
    int n = snprintf(line, sizeof line, "<%d>chroma2d %s: ", prio[level], name[level]);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2) {
        n = (int)sizeof line - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nowhere to report a failed log write */
}
