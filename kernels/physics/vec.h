/*
 * vec.h: the host/device qualifier and 3-vector arithmetic shared by the CPU
 * engine (gcc, C11) and the CUDA kernels (nvcc).
 *
 * Every function in kernels/physics/ is C2K_FN: static inline, pure, no
 * global state, so one source compiles into both. c2k_vec3 is our own type
 * rather than CUDA's float3 so that plain C sees the same layout.
 */
#ifndef C2K_VEC_H
#define C2K_VEC_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define C2K_FN static __host__ __device__ __forceinline__
#else
#define C2K_FN static inline
#endif

#define C2K_PI 3.14159265358979323846f
#define C2K_SPEED_OF_LIGHT 299.792458f /* mm/ns */

typedef struct c2k_vec3 {
    float x, y, z;
} c2k_vec3;

C2K_FN c2k_vec3 c2k_v3(float x, float y, float z)
{
    c2k_vec3 r = {x, y, z};
    return r;
}
C2K_FN c2k_vec3 c2k_load3(const float *p) { return c2k_v3(p[0], p[1], p[2]); }
C2K_FN void c2k_store3(float *p, c2k_vec3 v)
{
    p[0] = v.x;
    p[1] = v.y;
    p[2] = v.z;
}
C2K_FN c2k_vec3 c2k_add(c2k_vec3 a, c2k_vec3 b) { return c2k_v3(a.x + b.x, a.y + b.y, a.z + b.z); }
C2K_FN c2k_vec3 c2k_sub(c2k_vec3 a, c2k_vec3 b) { return c2k_v3(a.x - b.x, a.y - b.y, a.z - b.z); }
C2K_FN c2k_vec3 c2k_scale(c2k_vec3 a, float s) { return c2k_v3(a.x * s, a.y * s, a.z * s); }
/* a + s * b */
C2K_FN c2k_vec3 c2k_madd(c2k_vec3 a, float s, c2k_vec3 b)
{
    return c2k_v3(a.x + s * b.x, a.y + s * b.y, a.z + s * b.z);
}
C2K_FN float c2k_dot(c2k_vec3 a, c2k_vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
C2K_FN c2k_vec3 c2k_cross(c2k_vec3 a, c2k_vec3 b)
{
    return c2k_v3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
C2K_FN float c2k_norm(c2k_vec3 a) { return sqrtf(c2k_dot(a, a)); }
C2K_FN c2k_vec3 c2k_normalize(c2k_vec3 a) { return c2k_scale(a, 1.0f / c2k_norm(a)); }
/* min/max by comparison: one instruction on both targets, where libm's
 * fminf/fmaxf is a call on the CPU. A NaN in a gives b. */
C2K_FN float c2k_min(float a, float b) { return a < b ? a : b; }
C2K_FN float c2k_max(float a, float b) { return a > b ? a : b; }
C2K_FN int c2k_finite3(c2k_vec3 a) { return isfinite(a.x) && isfinite(a.y) && isfinite(a.z); }

/* An orthonormal basis (u, v) perpendicular to unit n, without branches on
 * the sign of n.z (Duff et al., JCGT 2017). */
C2K_FN void c2k_basis(c2k_vec3 n, c2k_vec3 *u, c2k_vec3 *v)
{
    float sign = copysignf(1.0f, n.z);
    float a = -1.0f / (sign + n.z);
    float b = n.x * n.y * a;
    *u = c2k_v3(1.0f + sign * n.x * n.x * a, sign * b, -sign * n.x);
    *v = c2k_v3(b, sign + n.y * n.y * a, -n.y);
}

#endif
