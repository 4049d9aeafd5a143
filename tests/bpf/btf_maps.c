/* Maps declared the way libbpf reads them: anonymous structs in SEC(".maps") whose members
 * carry the attributes in their BTF types (bpf_helpers.h's __uint and __type), compiled with
 * -g so the object has a .BTF section. */
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

typedef unsigned int __u32;
typedef unsigned long long __u64;

struct flow_key {
	__u32 saddr;
	__u32 daddr;
	unsigned short sport;
	unsigned short dport;
	unsigned char proto;
};

struct {
	__uint(type, 1 /* BPF_MAP_TYPE_HASH */);
	__uint(max_entries, 4096);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

struct {
	__uint(type, 9 /* BPF_MAP_TYPE_LRU_HASH */);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, struct flow_key);
	__uint(map_flags, 64 /* BPF_F_ZERO_SEED */);
} recent_connections SEC(".maps");

struct {
	__uint(type, 22 /* BPF_MAP_TYPE_QUEUE */);
	__uint(max_entries, 16);
	__uint(value_size, 8);
} events SEC(".maps");

struct {
	__uint(type, 27 /* BPF_MAP_TYPE_RINGBUF */);
	__uint(max_entries, 4096);
} rb SEC(".maps");

char _license[] SEC("license") = "GPL";
