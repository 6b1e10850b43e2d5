/* Minimal definitions for the pybpf.object test programs (no libbpf headers needed). */
#ifndef PYBPF_TEST_H
#define PYBPF_TEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
#define __kconfig __attribute__((section(".kconfig")))
#define __ksym __attribute__((section(".ksyms")))
#define __weak __attribute__((weak))
#define INLINE static __attribute__((always_inline)) inline
#define NOINLINE static __attribute__((noinline))

/* map types, flags and helper ids from the kernel's UAPI (numbers only) */
#define MAP_HASH 1
#define MAP_ARRAY 2
#define MAP_PROG_ARRAY 3
#define MAP_ARRAY_OF_MAPS 12
#define MAP_RINGBUF 27
#define ANY 0

static void *(*map_lookup)(void *map, const void *key) = (void *)1;
static long (*map_update)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static u64 (*pid_tgid)(void) = (void *)14;
static long (*tail_call)(void *ctx, void *map, u32 index) = (void *)12;
static long (*ringbuf_output)(void *rb, void *data, u64 size, u64 flags) = (void *)130;

struct xdp_md {
    u32 data;
    u32 data_end;
    u32 data_meta;
    u32 ingress_ifindex;
    u32 rx_queue_index;
    u32 egress_ifindex;
};

#endif
