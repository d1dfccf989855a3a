/*
 * runner.c: runs the tests of tests/list.h, each in a forked child with a
 * time limit, and prints one line per test and the summary line
 * "tests: N passed, N failed, N skipped". Exit status 0 when none failed.
 *
 * Built twice: c2-tests (C2T_LIST) and, with -DC2T_CUDA, c2-tests-cuda.
 * Usage: c2-tests [-t seconds] [name-substring ...]
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#include "list.h"
#ifdef C2T_CUDA
#define C2T_TESTS C2T_LIST_CUDA
#else
#define C2T_TESTS C2T_LIST
#endif

#define C2T_DECLARE(name) TEST(name);
C2T_TESTS(C2T_DECLARE)

typedef struct runner_test {
    const char *name;
    void (*fn)(void);
} runner_test;

#define C2T_ENTRY(name) {#name, c2t_##name},
static const runner_test runner_tests[] = {C2T_TESTS(C2T_ENTRY)};

static double runner_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int runner_selected(const char *name, int argc, char **argv, int first)
{
    if (first >= argc) {
        return 1;
    }
    for (int i = first; i < argc; i++) {
        if (strstr(name, argv[i])) {
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned limit = 300;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        limit = (unsigned)atoi(argv[2]);
        first = 3;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    int passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < sizeof runner_tests / sizeof runner_tests[0]; i++) {
        const runner_test *t = &runner_tests[i];
        if (!runner_selected(t->name, argc, argv, first)) {
            continue;
        }
        printf("[ RUN  ] %s\n", t->name);
        double t0 = runner_now();
        pid_t pid = fork();
        if (pid == 0) {
            alarm(limit); /* a hang becomes SIGALRM: a failure, not a stuck run */
            t->fn();
            fflush(stdout);
            _exit(0);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0) {
            status = -1;
        }
        double dt = runner_now() - t0;
        if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("[  OK  ] %s (%.2f s)\n", t->name, dt);
            passed++;
        } else if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == C2T_SKIP_CODE) {
            printf("[ SKIP ] %s\n", t->name);
            skipped++;
        } else {
            if (status != -1 && WIFSIGNALED(status)) {
                printf("         killed by signal %d%s\n", WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? " (time limit)" : "");
            }
            printf("[ FAIL ] %s (%.2f s)\n", t->name, dt);
            failed++;
        }
    }
    printf("tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
