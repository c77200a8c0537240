/* Output flow control (qd_flow.h). */
#include "qd_flow.h"

bool qd_flow_stopped(const struct qd_flow_limits *l, uint64_t out, uint64_t total, unsigned conns,
                     bool now)
{
    uint64_t share = l->total / (conns ? conns : 1);

    if (share < QD_FLOW_MIN_SHARE)
        share = QD_FLOW_MIN_SHARE;
    if (!now)
        return out > l->high || (l->total && total > l->total && out > share);
    if (out > l->high / 2)
        return true;
    return l->total && total > l->total / 8 * 7 && out > share / 2;
}

bool qd_flow_input_fits(uint64_t limit, uint64_t reserved, uint64_t need)
{
    return limit == 0 || reserved == 0 || (need <= limit && reserved <= limit - need);
}

bool qd_flow_keep_frame_buffer(size_t cap, size_t frame_len)
{
    return frame_len >= QD_TAKE_FRAME_BYTES && cap - frame_len <= frame_len / 8 + (256u << 10);
}
