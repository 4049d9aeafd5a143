/* The maps of samples/bpf/sockex1_kern.c and friends, declared the old way: a struct
 * bpf_map_def per map in SEC("maps"), which bpf_load.c read by symbol and created with
 * BPF_MAP_CREATE before loading the programs. */
#define SEC(name) __attribute__((section(name), used))

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

/* BPF_MAP_TYPE_ARRAY: bytes per IP protocol. */
struct bpf_map_def SEC("maps") my_map = {
	.type = 2,
	.key_size = sizeof(unsigned int),
	.value_size = sizeof(long),
	.max_entries = 256,
};

/* BPF_MAP_TYPE_HASH with BPF_F_NO_PREALLOC: flows seen. */
struct bpf_map_def SEC("maps") flow_map = {
	.type = 1,
	.key_size = 16,
	.value_size = sizeof(long),
	.max_entries = 1024,
	.map_flags = 1,
};

/* BPF_MAP_TYPE_PERCPU_ARRAY: one counter per CPU. */
struct bpf_map_def SEC("maps") pkt_count = {
	.type = 6,
	.key_size = 4,
	.value_size = 8,
	.max_entries = 1,
};

/* A mistake bpf_load.c passed on to the kernel: an array keyed by 8 bytes (EINVAL). */
struct bpf_map_def SEC("maps") bad_array = {
	.type = 2,
	.key_size = 8,
	.value_size = 8,
	.max_entries = 4,
};

char _license[] SEC("license") = "GPL";
