/* Just enough for the benchmark programs: no libbpf or kernel headers. */
typedef unsigned char u8;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*map_lookup)(void *map, const void *key) = (void *)1;
static long (*map_update)(void *map, const void *key, const void *value, u64 flags) = (void *)2;
static long (*map_delete)(void *map, const void *key) = (void *)3;
static u64 (*ktime_ns)(void) = (void *)5;
static u64 (*pid_tgid)(void) = (void *)14;
static long (*get_comm)(void *buf, u32 size) = (void *)16;
static long (*read_user_str)(void *dst, u32 size, const void *src) = (void *)114;
static long (*ringbuf_output)(void *rb, void *data, u64 size, u64 flags) = (void *)130;
static u64 (*ringbuf_query)(void *rb, u64 flags) = (void *)134;
char LICENSE[] SEC("license") = "GPL";
