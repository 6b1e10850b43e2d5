# Lesson verifier_null_check: the refused version (see verifier_null_check.py).
# Look up a TCP socket for an all-zero IPv4 tuple, then read its family field.
    r6 = r1                         # keep the context
    r1 = 0
    *(u64 *)(r10 - 16) = r1         # struct bpf_sock_tuple, ipv4: 12 bytes of zeros
    *(u64 *)(r10 - 8) = r1
    r1 = r6
    r2 = r10
    r2 += -16                       # the tuple
    r3 = 12                         # its size
    r4 = -1                         # BPF_F_CURRENT_NETNS
    r5 = 0
    call bpf_sk_lookup_tcp          # r0: a socket, or NULL when none matches
    r1 = *(u32 *)(r0 + 4)           # refused: r0 may be NULL (sock_or_null)
    r0 = 2                          # XDP_PASS
    exit
