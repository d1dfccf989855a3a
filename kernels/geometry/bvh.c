/*
 * bvh.c: the host BVH builder: top-down binned SAH (Wald, "On fast
 * construction of SAH-based bounding volume hierarchies", 2007) into 32-byte
 * nodes with children side by side.
 *
 * Why this builder: binning is O(n log n) with small constants, so 1 M
 * triangles build in well under the 3 s budget on one core (figures in
 * doc/benchmarks.md), while its trees trace within a few percent of a full
 * sweep SAH. Node boxes are padded by a few ulps of their coordinates so the
 * float slab test in geom.h never culls a box that a watertight triangle
 * test would hit.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "geometry_int.h"

/* Tuning knobs, overridable with -D for experiments (doc/benchmarks.md). */
#ifndef BVH_BINS
#define BVH_BINS 16
#endif
#ifndef BVH_MAX_LEAF
#define BVH_MAX_LEAF 8 /* a leaf larger than this is split even if SAH disagrees */
#endif
#define BVH_COST_TRAVERSE 1.0f
#define BVH_COST_TRIANGLE 1.0f

/* Plain comparisons: inputs are finite (checked when added), and libm's
 * NaN-aware fminf/fmaxf calls cost half the build time. */
static inline float bvh_min(float a, float b) { return a < b ? a : b; }
static inline float bvh_max(float a, float b) { return a > b ? a : b; }

typedef struct bvh_box {
    float lo[3], hi[3];
} bvh_box;

static void box_empty(bvh_box *b)
{
    for (int k = 0; k < 3; k++) {
        b->lo[k] = FLT_MAX;
        b->hi[k] = -FLT_MAX;
    }
}

static void box_grow(bvh_box *b, const bvh_box *o)
{
    for (int k = 0; k < 3; k++) {
        b->lo[k] = bvh_min(b->lo[k], o->lo[k]);
        b->hi[k] = bvh_max(b->hi[k], o->hi[k]);
    }
}

static float box_area(const bvh_box *b)
{
    float d[3];
    for (int k = 0; k < 3; k++) {
        d[k] = bvh_max(0.0f, b->hi[k] - b->lo[k]);
    }
    return 2.0f * (d[0] * d[1] + d[1] * d[2] + d[2] * d[0]);
}

typedef struct bvh_task {
    uint32_t node, start, count, depth;
} bvh_task;

typedef struct bvh_builder {
    const bvh_box *tb;  /* per-triangle bounds */
    const float *cent;  /* per-triangle centroid, 3 floats */
    uint32_t *idx;      /* triangle order being built */
    c2k_node *nodes;
    uint32_t nnodes;
} bvh_builder;

/* Writes a node's padded bounds over triangles idx[start, start+count). */
static void bvh_set_bounds(bvh_builder *b, c2k_node *n, uint32_t start, uint32_t count, bvh_box *cb)
{
    bvh_box bb;
    box_empty(&bb);
    box_empty(cb);
    for (uint32_t i = start; i < start + count; i++) {
        uint32_t t = b->idx[i];
        box_grow(&bb, &b->tb[t]);
        for (int k = 0; k < 3; k++) {
            cb->lo[k] = bvh_min(cb->lo[k], b->cent[3 * (size_t)t + k]);
            cb->hi[k] = bvh_max(cb->hi[k], b->cent[3 * (size_t)t + k]);
        }
    }
    for (int k = 0; k < 3; k++) {
        float pad = 4.0f * FLT_EPSILON * bvh_max(fabsf(bb.lo[k]), fabsf(bb.hi[k])) + 1e-30f;
        n->lo[k] = bb.lo[k] - pad;
        n->hi[k] = bb.hi[k] + pad;
    }
}

/* Chooses a split of idx[start, start+count) by binned SAH. Returns the
 * number that go left (0 = make a leaf). */
static uint32_t bvh_split(bvh_builder *b, const c2k_node *n, uint32_t start, uint32_t count, const bvh_box *cb)
{
    float best_cost = INFINITY;
    int best_axis = -1, best_bin = 0;
    for (int axis = 0; axis < 3; axis++) {
        float extent = cb->hi[axis] - cb->lo[axis];
        if (!(extent > 0.0f)) {
            continue;
        }
        bvh_box bins[BVH_BINS];
        uint32_t cnt[BVH_BINS] = {0};
        for (int i = 0; i < BVH_BINS; i++) {
            box_empty(&bins[i]);
        }
        float scale = (float)BVH_BINS / extent;
        for (uint32_t i = start; i < start + count; i++) {
            uint32_t t = b->idx[i];
            int bin = (int)((b->cent[3 * (size_t)t + axis] - cb->lo[axis]) * scale);
            bin = bin < 0 ? 0 : bin >= BVH_BINS ? BVH_BINS - 1 : bin;
            cnt[bin]++;
            box_grow(&bins[bin], &b->tb[t]);
        }
        /* sweep: area and count of everything right of each plane */
        float right_area[BVH_BINS];
        uint32_t right_cnt[BVH_BINS];
        bvh_box acc;
        box_empty(&acc);
        uint32_t c = 0;
        for (int i = BVH_BINS - 1; i > 0; i--) {
            box_grow(&acc, &bins[i]);
            c += cnt[i];
            right_area[i] = box_area(&acc);
            right_cnt[i] = c;
        }
        box_empty(&acc);
        c = 0;
        for (int i = 0; i < BVH_BINS - 1; i++) {
            box_grow(&acc, &bins[i]);
            c += cnt[i];
            if (c == 0 || right_cnt[i + 1] == 0) {
                continue;
            }
            float cost = box_area(&acc) * (float)c + right_area[i + 1] * (float)right_cnt[i + 1];
            if (cost < best_cost) {
                best_cost = cost;
                best_axis = axis;
                best_bin = i;
            }
        }
    }
    bvh_box nb;
    memcpy(nb.lo, n->lo, sizeof nb.lo);
    memcpy(nb.hi, n->hi, sizeof nb.hi);
    float area = box_area(&nb);
    float leaf_cost = BVH_COST_TRIANGLE * (float)count;
    float split_cost = BVH_COST_TRAVERSE + BVH_COST_TRIANGLE * best_cost / (area > 0.0f ? area : 1.0f);
    if (best_axis < 0) {
        /* all centroids coincide: halve by order so leaves stay small */
        return count > BVH_MAX_LEAF ? count / 2 : 0;
    }
    if (split_cost >= leaf_cost && count <= BVH_MAX_LEAF) {
        return 0;
    }
    /* partition in place by bin */
    float scale = (float)BVH_BINS / (cb->hi[best_axis] - cb->lo[best_axis]);
    uint32_t i = start, j = start + count;
    while (i < j) {
        uint32_t t = b->idx[i];
        int bin = (int)((b->cent[3 * (size_t)t + best_axis] - cb->lo[best_axis]) * scale);
        bin = bin < 0 ? 0 : bin >= BVH_BINS ? BVH_BINS - 1 : bin;
        if (bin <= best_bin) {
            i++;
        } else {
            b->idx[i] = b->idx[--j];
            b->idx[j] = t;
        }
    }
    return i - start;
}

/* The tree's expected cost of tracing a random ray (surface area
 * heuristic, relative to the root's area): the quality figure that lets
 * builder settings be compared without timing noise. */
static double bvh_sah_cost(const c2k_node *nodes, uint32_t nnodes)
{
    double root = 0.0, cost = 0.0;
    for (uint32_t i = 0; i < nnodes; i++) {
        bvh_box b;
        memcpy(b.lo, nodes[i].lo, sizeof b.lo);
        memcpy(b.hi, nodes[i].hi, sizeof b.hi);
        double a = box_area(&b);
        root = i == 0 ? a : root;
        cost += a * (nodes[i].count ? BVH_COST_TRIANGLE * nodes[i].count : BVH_COST_TRAVERSE);
    }
    return root > 0.0 ? cost / root : 0.0;
}

int c2i_bvh_build(const float *verts, uint32_t n, c2k_node **nodes_out, uint32_t *nnodes_out, uint32_t *perm,
                  c2_build_stats *stats, c2_error *err)
{
    bvh_builder b;
    memset(&b, 0, sizeof b);
    bvh_box *tb = malloc((size_t)n * sizeof *tb);
    float *cent = malloc((size_t)n * 3 * sizeof *cent);
    /* a binary tree with n leaves at most has 2n - 1 nodes */
    b.nodes = malloc(((size_t)2 * n) * sizeof *b.nodes);
    bvh_task *stack = malloc(2 * C2K_BVH_MAX_DEPTH * sizeof *stack);
    if (!tb || !cent || !b.nodes || !stack) {
        free(tb);
        free(cent);
        free(b.nodes);
        free(stack);
        return c2i_fail(err, C2_ENOMEM, "bvh: out of memory for %u triangles", n);
    }
    for (uint32_t t = 0; t < n; t++) {
        const float *v = verts + 9 * (size_t)t;
        for (int k = 0; k < 3; k++) {
            tb[t].lo[k] = bvh_min(v[k], bvh_min(v[3 + k], v[6 + k]));
            tb[t].hi[k] = bvh_max(v[k], bvh_max(v[3 + k], v[6 + k]));
            cent[3 * (size_t)t + k] = (v[k] + v[3 + k] + v[6 + k]) * (1.0f / 3.0f);
        }
        perm[t] = t;
    }
    b.tb = tb;
    b.cent = cent;
    b.idx = perm;
    b.nnodes = 1;
    uint32_t sp = 0, max_depth = 0, max_leaf = 0;
    stack[sp++] = (bvh_task){0, 0, n, 0};
    while (sp > 0) {
        bvh_task task = stack[--sp];
        c2k_node *node = &b.nodes[task.node];
        bvh_box cb;
        bvh_set_bounds(&b, node, task.start, task.count, &cb);
        /* The traversal stack holds one entry per level: stop splitting
         * before the tree gets deeper than it. */
        uint32_t left = task.depth + 1 < C2K_BVH_MAX_DEPTH ? bvh_split(&b, node, task.start, task.count, &cb) : 0;
        if (left == 0 || left == task.count) {
            node->first = task.start;
            node->count = task.count;
            max_depth = task.depth > max_depth ? task.depth : max_depth;
            max_leaf = task.count > max_leaf ? task.count : max_leaf;
            continue;
        }
        uint32_t child = b.nnodes;
        b.nnodes += 2;
        node->first = child;
        node->count = 0;
        /* right first, so the left subtree is built next (depth-first) */
        stack[sp++] = (bvh_task){child + 1, task.start + left, task.count - left, task.depth + 1};
        stack[sp++] = (bvh_task){child, task.start, left, task.depth + 1};
    }
    free(tb);
    free(cent);
    free(stack);
    stats->sah_cost = bvh_sah_cost(b.nodes, b.nnodes);
    c2k_node *shrunk = realloc(b.nodes, (size_t)b.nnodes * sizeof *b.nodes);
    *nodes_out = shrunk ? shrunk : b.nodes;
    *nnodes_out = b.nnodes;
    stats->depth = max_depth;
    stats->max_leaf = max_leaf;
    return 0;
}
