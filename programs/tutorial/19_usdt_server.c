/* The program traced by lesson 19 (19_usdt.py): a stand-in for a server that handles
 * one "request" per argument and announces each through a USDT probe.
 *
 *     gcc -O2 -o /tmp/usdt_server programs/tutorial/19_usdt_server.c
 *     /tmp/usdt_server /index.html /about
 *
 * sys/sdt.h (Debian: systemtap-sdt-dev) turns each DTRACE_PROBE/STAP_PROBE macro into a
 * single nop plus an ELF note (.note.stapsdt) that records the probe's address and
 * where each argument lives (a register, a stack slot, a constant). */
#include <stdio.h>
#include <sys/sdt.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *path = argv[i];
        long id = i;
        STAP_PROBE2(tutorial, request, id, path);
        printf("served %s\n", path);
    }
    return 0;
}
