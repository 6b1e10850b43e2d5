# Lesson verifier_loop_bound: the refused version (see verifier_loop_bound.py).
# Count x (the packet's first 8 bytes) up until it wraps around to 0.
    r2 = *(u32 *)(r1 + 0)           # ctx->data
    r3 = *(u32 *)(r1 + 4)           # ctx->data_end
    r4 = r2
    r4 += 8
    if r4 > r3 goto out             # fewer than 8 bytes: leave
    r6 = *(u64 *)(r2 + 0)           # x: any 64-bit value
again:
    r6 += 1                         # refused here: the loop's head, seen twice the same
    if r6 != 0 goto again
    r0 = 2
    exit
out:
    r0 = 1
    exit
