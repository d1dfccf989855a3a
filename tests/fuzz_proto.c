/* fuzz_proto.c: libFuzzer target for the protocol decoder (make fuzz): any
 * bytes as a request (and submit_event body) and as a reply (and result
 * body). Must never crash, leak or allocate without bound. */
#include <stdint.h>

#include "../proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    c2p_msg m;
    c2p_err err;
    if (c2p_parse_request(&m, data, size, &err) == 0 && m.type == C2P_T_SUBMIT_EVENT) {
        c2p_event ev;
        if (c2p_decode_event(&m, 1u << 20, &ev, &err) == 0) {
            c2p_event_free(&ev);
        }
    }
    c2p_msg_free(&m);
    if (c2p_parse_reply(&m, data, size, &err) == 0 && m.ok && m.type == C2P_T_SUBMIT_EVENT) {
        c2p_result r;
        if (c2p_decode_result(&m, &r, &err) == 0) {
            c2p_result_free(&r);
        }
    }
    c2p_msg_free(&m);
    return 0;
}
