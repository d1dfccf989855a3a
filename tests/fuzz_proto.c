/* fuzz_proto.c: libFuzzer target for the protocol decoder (make fuzz): any
 * bytes as a request (and submit_event, submit_events or load_geometry
 * body) and as a reply (and result or results body). Must never crash, leak or allocate without bound. */
#include <stdint.h>

#include "../proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    c2p_msg m;
    c2p_err err;
    int parsed = c2p_parse_request(&m, data, size, &err) == 0;
    if (parsed && m.type == C2P_T_SUBMIT_EVENT) {
        c2p_event ev;
        if (c2p_decode_event(&m, 1u << 20, &ev, &err) == 0) {
            c2p_event_free(&ev);
        }
    } else if (parsed && m.type == C2P_T_SUBMIT_EVENTS) {
        c2p_event *evs;
        uint32_t n;
        if (c2p_decode_events(&m, 1u << 20, &evs, &n, &err) == 0) {
            c2p_events_free(evs, n);
        }
    } else if (parsed && m.type == C2P_T_LOAD_GEOMETRY) {
        char name[C2P_NAME_MAX + 1];
        int replace;
        c2_geometry *g;
        if (c2p_decode_geometry(&m, name, &replace, &g, NULL, &err) == 0) {
            c2_geometry_free(g);
        }
    }
    c2p_msg_free(&m);
    parsed = c2p_parse_reply(&m, data, size, &err) == 0 && m.ok;
    if (parsed && m.type == C2P_T_SUBMIT_EVENT) {
        c2p_result r;
        if (c2p_decode_result(&m, &r, &err) == 0) {
            c2p_result_free(&r);
        }
    } else if (parsed && m.type == C2P_T_SUBMIT_EVENTS) { /* as a client that sent two events */
        c2p_result r[2];
        c2p_err errs[2];
        if (c2p_decode_results(&m, 2, r, errs, &err) == 0) {
            c2p_result_free(&r[0]);
            c2p_result_free(&r[1]);
        }
    }
    c2p_msg_free(&m);
    return 0;
}
