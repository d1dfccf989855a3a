/*
 * team.c: a fork-join team of host threads (engine_int.h). The workers
 * live as long as the team and sleep on a condition variable between
 * rounds; a round is one call of c2i_team_run, which the caller joins as
 * thread 0 and which returns when every thread has returned from fn.
 * Also how many CPUs the process may use, which sizes teams and engines.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine_int.h"

struct c2i_team {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t round;        /* rounds started */
    uint32_t n, next, left; /* threads (caller included); next index to hand out; workers still in the round */
    int quit;
    c2i_team_fn fn;
    void *arg;
    pthread_t tid[]; /* n - 1 workers */
};

static void *team_main(void *p)
{
    c2i_team *tm = p;
    uint64_t seen = 0;
    pthread_mutex_lock(&tm->mu);
    for (;;) {
        while (tm->round == seen && !tm->quit) {
            pthread_cond_wait(&tm->go, &tm->mu);
        }
        if (tm->quit) {
            break;
        }
        seen = tm->round; /* a round is not over before every worker ran it: none is missed */
        const uint32_t t = tm->next++;
        c2i_team_fn fn = tm->fn;
        void *arg = tm->arg;
        pthread_mutex_unlock(&tm->mu);
        fn(arg, t, tm->n);
        pthread_mutex_lock(&tm->mu);
        if (--tm->left == 0) {
            pthread_cond_signal(&tm->done);
        }
    }
    pthread_mutex_unlock(&tm->mu);
    return NULL;
}

c2i_team *c2i_team_new(uint32_t n)
{
    n = n ? n < C2I_TEAM_MAX ? n : C2I_TEAM_MAX : 1;
    c2i_team *tm = calloc(1, sizeof *tm + (n - 1) * sizeof(pthread_t));
    if (!tm) {
        return NULL;
    }
    pthread_mutex_init(&tm->mu, NULL);
    pthread_cond_init(&tm->go, NULL);
    pthread_cond_init(&tm->done, NULL);
    tm->n = 1;
    while (tm->n < n && pthread_create(&tm->tid[tm->n - 1], NULL, team_main, tm) == 0) {
        tm->n++; /* a thread that cannot be made leaves a smaller team */
    }
    return tm;
}

void c2i_team_free(c2i_team *tm)
{
    if (!tm) {
        return;
    }
    pthread_mutex_lock(&tm->mu);
    tm->quit = 1;
    pthread_cond_broadcast(&tm->go);
    pthread_mutex_unlock(&tm->mu);
    for (uint32_t k = 0; k + 1 < tm->n; k++) {
        pthread_join(tm->tid[k], NULL);
    }
    pthread_cond_destroy(&tm->go);
    pthread_cond_destroy(&tm->done);
    pthread_mutex_destroy(&tm->mu);
    free(tm);
}

uint32_t c2i_team_size(const c2i_team *tm) { return tm ? tm->n : 1; }

uint64_t c2i_team_rounds(const c2i_team *tm) { return tm ? tm->round : 0; }

void c2i_team_run(c2i_team *tm, c2i_team_fn fn, void *arg)
{
    if (!tm || tm->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&tm->mu);
    tm->fn = fn;
    tm->arg = arg;
    tm->next = 1;
    tm->left = tm->n - 1;
    tm->round++;
    pthread_cond_broadcast(&tm->go);
    pthread_mutex_unlock(&tm->mu);
    fn(arg, 0, tm->n);
    pthread_mutex_lock(&tm->mu);
    while (tm->left) {
        pthread_cond_wait(&tm->done, &tm->mu);
    }
    pthread_mutex_unlock(&tm->mu);
}

uint32_t c2i_cores(void)
{
    cpu_set_t set; /* a cpuset (batch systems, containers, taskset) shows in the affinity mask */
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        return (uint32_t)CPU_COUNT(&set);
    }
    const long n = sysconf(_SC_NPROCESSORS_ONLN); /* more CPUs than a cpu_set_t holds, or no mask */
    return n > 0 ? (uint32_t)n : 1;
}
