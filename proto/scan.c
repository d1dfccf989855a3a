/*
 * scan.c: the structural check of a message's raw bytes, done before
 * msgpack-c unpacks anything (its unpacker allocates for every element a
 * header claims, so a 5-byte message could ask for gigabytes).
 *
 * One pass, no allocation: a stack of how many items each open container
 * still holds. A container may claim no more elements than bytes remain
 * (every element takes at least one), so what msgpack-c later allocates is
 * bounded by a small multiple of the message size.
 */
#include <string.h>

#include "proto.h"

static uint64_t scan_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

int c2p_scan(const void *buf, size_t len, c2p_err *err)
{
    const uint8_t *b = buf;
    uint64_t left[C2P_MAX_DEPTH + 1]; /* items still to read per open container */
    int depth = 0;
    size_t pos = 0;
    uint64_t elements = 0;
    left[0] = 1; /* the root value */
    if (len == 0) {
        return c2i_fail(err, C2P_MALFORMED, "empty message");
    }
    if (!((b[0] >= 0x80 && b[0] <= 0x8f) || b[0] == 0xde || b[0] == 0xdf)) {
        return c2i_fail(err, C2P_MALFORMED, "a message must be one msgpack map (first byte 0x%02x)", b[0]);
    }
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        if (pos >= len) {
            return c2i_fail(err, C2P_MALFORMED, "message truncated at byte %zu", pos);
        }
        left[depth]--;
        uint8_t t = b[pos++];
        size_t rest = len - pos;
        uint64_t payload = 0; /* bytes of data after the header */
        uint64_t items = 0;   /* elements of a container */
        int container = 0, hdr = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            payload = 0;
        } else if (t <= 0x8f) {
            container = 2;
            items = t & 0x0fu;
        } else if (t <= 0x9f) {
            container = 1;
            items = t & 0x0fu;
        } else if (t <= 0xbf) {
            payload = t & 0x1fu;
        } else {
            switch (t) {
            case 0xc4: case 0xd9: hdr = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xca: payload = 4; break; /* float32 */
            case 0xcb: payload = 8; break;
            case 0xcc: case 0xd0: payload = 1; break;
            case 0xcd: case 0xd1: payload = 2; break;
            case 0xce: case 0xd2: payload = 4; break;
            case 0xcf: case 0xd3: payload = 8; break;
            case 0xdc: container = 1; hdr = 2; break;
            case 0xdd: container = 1; hdr = 4; break;
            case 0xde: container = 2; hdr = 2; break;
            case 0xdf: container = 2; hdr = 4; break;
            default:
                return c2i_fail(err, C2P_MALFORMED, "byte %zu: type 0x%02x is not used by this protocol%s", pos - 1,
                                t, (t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8) ? " (ext)" : "");
            }
            if (hdr) {
                if (rest < (size_t)hdr) {
                    return c2i_fail(err, C2P_MALFORMED, "message truncated in a length at byte %zu", pos);
                }
                uint64_t n = scan_be(b + pos, hdr);
                pos += (size_t)hdr;
                rest -= (size_t)hdr;
                if (container) {
                    items = n;
                } else {
                    payload = n;
                }
            }
        }
        if (container) {
            uint64_t elems = container == 2 ? 2 * items : items;
            if (elems > rest) {
                return c2i_fail(err, C2P_MALFORMED, "byte %zu: %s claims %llu entries but %zu bytes remain",
                                pos, container == 2 ? "a map" : "an array", (unsigned long long)items, rest);
            }
            if (container == 2 && items > C2P_MAX_MAP) {
                return c2i_fail(err, C2P_MALFORMED, "byte %zu: a map of %llu entries (at most %d)", pos,
                                (unsigned long long)items, C2P_MAX_MAP);
            }
            elements += elems;
            if (elements > C2P_MAX_ELEMENTS) {
                return c2i_fail(err, C2P_MALFORMED, "byte %zu: more than %u map entries and array elements in all",
                                pos, C2P_MAX_ELEMENTS);
            }
            if (depth + 1 > C2P_MAX_DEPTH) {
                return c2i_fail(err, C2P_MALFORMED, "byte %zu: nested deeper than %d", pos, C2P_MAX_DEPTH);
            }
            left[++depth] = elems;
        } else {
            if (payload > rest) {
                return c2i_fail(err, C2P_MALFORMED, "byte %zu: a value of %llu bytes but %zu remain", pos,
                                (unsigned long long)payload, rest);
            }
            pos += (size_t)payload;
        }
    }
    if (pos != len) {
        return c2i_fail(err, C2P_MALFORMED, "%zu bytes after the message's map", len - pos);
    }
    return 0;
}
