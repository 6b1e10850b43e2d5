/* The workload of tests/test_bpftrace_printf_batch.py: N calls of printf_ev() with
 * arguments from a fixed linear congruential sequence (negative, zero, 8/16/32/64-bit
 * boundary values, strings empty, short, longer than bpftrace's strlen, with bytes
 * above 0x7f), a call of printf_mark() every 250 calls (with the same string), and a
 * 1 ms pause every 20 calls so that neither tracer's buffer overflows. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((noinline)) long printf_ev(long a, long b, long c, const char *s, long d)
{
    __asm__ volatile("" ::: "memory");
    return a ^ b ^ c ^ d ^ (long)strlen(s);
}

__attribute__((noinline)) long printf_mark(long k, const char *s)
{
    __asm__ volatile("" ::: "memory");
    return k + (long)strlen(s);
}

static uint64_t state = 0x2545f4914f6cdd1dULL;

static uint64_t next(void)
{
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 3000;
    static const long special[] = {0, 1, -1, 127, 128, 255, 256, -128, -129, 32767,
                                   32768, -32768, 65535, 65536, 2147483647L,
                                   -2147483647L - 1, 4294967295L, 4294967296L,
                                   INT64_MAX, INT64_MIN};
    static const char *strs[] = {"", "a", "stormgen", "right-aligned?",
                                 "caf\xe9 \xff\x80 bytes",
                                 "a string longer than bpftrace's 64-byte strlen, so it "
                                 "is cut at 63 bytes by str() in both tracers",
                                 "100%% sure %d %s", "tab\there"};
    char buf[128];
    for (long i = 0; i < n; i++) {
        uint64_t r = next();
        long a = (i % 3 == 0) ? special[(r >> 7) % 20] : (long)next();
        long b = (i % 4 == 0) ? special[(r >> 13) % 20] : (long)(next() >> (r % 64));
        long c = (i % 5 == 0) ? special[(r >> 21) % 20] : (long)(int16_t)next();
        long d = (i % 7 == 0) ? 0 : (long)(next() % 256);
        const char *s = strs[(r >> 33) % 8];
        if (i % 11 == 0) {
            snprintf(buf, sizeof buf, "n%ld-%lx", i, (unsigned long)r);
            s = buf;
        }
        printf_ev(a, b, c, s, d);
        if (i % 250 == 0)
            printf_mark(i, s);
        if (i % 20 == 19)
            usleep(1000);
    }
    return 0;
}
