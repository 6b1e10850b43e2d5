# Lesson verifier_null_check: the fix (see verifier_null_check.py).
    r6 = r1
    r1 = 0
    *(u64 *)(r10 - 16) = r1
    *(u64 *)(r10 - 8) = r1
    r1 = r6
    r2 = r10
    r2 += -16
    r3 = 12
    r4 = -1
    r5 = 0
    call bpf_sk_lookup_tcp
    if r0 == 0 goto none            # the check: below it r0 is a socket, not NULL
    r1 = *(u32 *)(r0 + 4)           # sk->family
    r1 = r0
    call bpf_sk_release             # a looked-up socket is a reference: give it back
none:
    r0 = 2
    exit
