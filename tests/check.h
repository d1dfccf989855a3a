/*
 * check.h: the C test harness. Each test is a function registered in
 * tests/list.h; tests/runner.c runs each in its own child process with a
 * time limit, so a crash or a hang fails that test alone, and ends with
 * "tests: N passed, N failed, N skipped".
 *
 * Checks print what was compared and the tolerance, so a failure reads as a
 * verdict: CHECK_SIGMA(observed, expected, sigma, nsigma, what).
 */
#ifndef C2T_CHECK_H
#define C2T_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define C2T_SKIP_CODE 77 /* exit status of a skipped test, as automake's */

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

/* |observed - expected| <= nsigma * sigma, printing the pull either way. */
#define CHECK_SIGMA(observed, expected, sigma, nsigma, what)                                            \
    do {                                                                                                \
        double o_ = (observed), e_ = (expected), s_ = (sigma);                                          \
        double pull_ = s_ > 0 ? (o_ - e_) / s_ : (o_ == e_ ? 0.0 : INFINITY);                           \
        printf("  %-44s observed %.6g expected %.6g sigma %.3g pull %+.2f (limit %g)\n", what, o_, e_, s_, \
               pull_, (double)(nsigma));                                                                \
        CHECK(fabs(pull_) <= (nsigma), "%s off by %.2f sigma", what, pull_);                            \
    } while (0)

/* |observed - expected| <= tol. */
#define CHECK_NEAR(observed, expected, tol, what)                                                       \
    do {                                                                                                \
        double o_ = (observed), e_ = (expected);                                                        \
        printf("  %-44s observed %.9g expected %.9g |diff| %.3g (tol %.3g)\n", what, o_, e_, fabs(o_ - e_), \
               (double)(tol));                                                                          \
        CHECK(fabs(o_ - e_) <= (tol), "%s", what);                                                      \
    } while (0)

#define SKIP(...)                     \
    do {                              \
        printf("  SKIP ");            \
        printf(__VA_ARGS__);          \
        printf("\n");                 \
        fflush(stdout);               \
        exit(C2T_SKIP_CODE);          \
    } while (0)

/* Binomial standard deviation of a fraction p over n trials. */
static inline double c2t_binomial_sigma(double p, double n) { return sqrt(p * (1.0 - p) / n); }

/* Wilson-Hilferty: the chi-square value whose upper tail is that of a
 * standard normal at z, for k degrees of freedom. */
static inline double c2t_chi2_limit(double k, double z)
{
    double a = 2.0 / (9.0 * k);
    double c = 1.0 - a + z * sqrt(a);
    return k * c * c * c;
}

#define TEST(name) void c2t_##name(void)

#endif
