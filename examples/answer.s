# The smallest useful program: sum the input bytes, return the answer.
# Run it in the kernel:  sudo pybpf exec examples/answer.s --mem "2a 00 00 00"
# r1 points at the input memory, r2 holds its length.
    r0 = 0
    r3 = 0
loop:
    if r3 >= r2 goto done
    if r3 >= 64 goto done          # a bound the verifier can see
    r4 = r1
    r4 += r3
    r5 = *(u8 *)(r4 + 0)
    r0 += r5
    r3 += 1
    goto loop
done:
    exit
