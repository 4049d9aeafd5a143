/* libbpf_client.c: bpf(2) maps through libbpf 1.1's low-level API (<bpf/bpf.h>), the way
 * tools and the book's later chapters use them: bpf_map_create() with a name and options,
 * the map types a learner tries next (no-prealloc hash, LRU hash, per-CPU array, LPM trie,
 * queue), batch lookup, freeze, pinning, finding a map by id, and map fds shared by dup()
 * and fork().
 *
 * Every call prints one line `name: ret=R errno=NAME`, then what it read. libbpf 1.x returns
 * -errno and also sets errno; errno=0 is printed when the call succeeded. The output is
 * deterministic: no map ids (only whether they match), no pointers, no CPU count, hash
 * contents sorted. fd numbers are printed on purpose: a model must hand out the same numbers
 * as the kernel (the lowest free fd).
 *
 * Usage: libbpf_client [PINDIR]   (PINDIR is a bpffs directory, default /sys/fs/bpf)
 * Build: gcc -O1 -Wall -o libbpf_client tests/preload/libbpf_client.c -lbpf
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "errname.h"

/* CALL(name, expr): run a libbpf call, keep its errno before anything else can change it,
 * print `name: ret=R errno=NAME`, and yield the return value. */
static int last_errno;
static long report(const char *name, long ret, int err)
{
	last_errno = ret < 0 ? err : 0;
	printf("%s: ret=%ld errno=%s\n", name, ret, errname(last_errno));
	return ret;
}
#define CALL(name, expr) ({ errno = 0; long r_ = (expr); report((name), r_, errno); })

/* The map's identity as the kernel reports it (struct bpf_map_info), without its id. */
static void show_info(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	CALL("  bpf_obj_get_info_by_fd", bpf_obj_get_info_by_fd(fd, &info, &len));
	printf("    name=\"%s\" type=%s key_size=%u value_size=%u max_entries=%u map_flags=%#x\n",
	       info.name, libbpf_bpf_map_type_str(info.type), info.key_size, info.value_size,
	       info.max_entries, info.map_flags);
}

static __u32 map_id(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.id;
}

/* Count a map's keys with bpf_map_get_next_key, from NULL until ENOENT. */
static int count_keys(int fd, size_t key_size)
{
	unsigned char key[64], next[64];
	void *prev = NULL;
	int n = 0;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, key_size);
		prev = key;
		n++;
	}
	return n;
}

struct kv {
	__u32 key;
	__u64 value;
};

static int cmp_kv(const void *a, const void *b)
{
	__u32 x = ((const struct kv *)a)->key, y = ((const struct kv *)b)->key;
	return (x > y) - (x < y);
}

/* An LPM trie key: a prefix length, then the address (IPv4, network byte order). */
struct lpm_key {
	__u32 prefixlen;
	__u8 addr[4];
};

static struct lpm_key cidr(__u32 prefixlen, __u8 a, __u8 b, __u8 c, __u8 d)
{
	struct lpm_key k = { prefixlen, { a, b, c, d } };
	return k;
}

static const char *cidr_str(const struct lpm_key *k)
{
	static char buf[32];
	snprintf(buf, sizeof(buf), "%u.%u.%u.%u/%u", k->addr[0], k->addr[1], k->addr[2],
		 k->addr[3], k->prefixlen);
	return buf;
}

int main(int argc, char **argv)
{
	const char *pindir = argc > 1 ? argv[1] : "/sys/fs/bpf";
	char name[BPF_OBJ_NAME_LEN], label[160], path[4096];
	__u32 key, our_id;
	__u64 value;
	int fd, nopre_fd, lru_fd, pcpu_fd, lpm_fd, queue_fd, batch_fd, frozen_fd, pinned_fd,
		dup_fd, shared_fd;
	LIBBPF_OPTS(bpf_map_create_opts, nopre_opts, .map_flags = BPF_F_NO_PREALLOC);

	/* stdout may be a pipe: line-buffer it, and flush before fork() so that no buffered
	 * line is printed twice. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("== 1. bpf_map_create() with a name, read back with bpf_obj_get_info_by_fd()\n");
	/* The name carries the pid: section 10 looks for it among every map on the host. */
	snprintf(name, sizeof(name), "lbc_%d", (int)getpid());
	fd = CALL("bpf_map_create(HASH, \"lbc_PID\", key 4, value 8, max_entries 64)",
		  bpf_map_create(BPF_MAP_TYPE_HASH, name, 4, 8, 64, NULL));
	if (fd < 0)
		return 1;
	{
		struct bpf_map_info info;
		__u32 len = sizeof(info);
		memset(&info, 0, sizeof(info));
		CALL("  bpf_obj_get_info_by_fd", bpf_obj_get_info_by_fd(fd, &info, &len));
		/* The kernel fills in as much of struct bpf_map_info as both sides know. */
		printf("    info_len=%u name is ours: %s\n", len,
		       strcmp(info.name, name) == 0 ? "yes" : "no");
		printf("    type=%s key_size=%u value_size=%u max_entries=%u map_flags=%#x\n",
		       libbpf_bpf_map_type_str(info.type), info.key_size, info.value_size,
		       info.max_entries, info.map_flags);
		our_id = info.id;
	}
	/* A name with a character other than [A-Za-z0-9_.] is refused by the kernel. */
	CALL("bpf_map_create(HASH, \"bad-name\")",
	     bpf_map_create(BPF_MAP_TYPE_HASH, "bad-name", 4, 8, 64, NULL));

	printf("== 2. a BPF_F_NO_PREALLOC hash: elements allocated on update\n");
	nopre_fd = CALL("bpf_map_create(HASH, \"nopre\", key 4, value 8, max_entries 2, NO_PREALLOC)",
			bpf_map_create(BPF_MAP_TYPE_HASH, "nopre", 4, 8, 2, &nopre_opts));
	show_info(nopre_fd);
	key = 1, value = 100;
	CALL("bpf_map_update_elem(key 1, 100, BPF_NOEXIST)",
	     bpf_map_update_elem(nopre_fd, &key, &value, BPF_NOEXIST));
	CALL("bpf_map_update_elem(key 1, 100, BPF_NOEXIST) [again]",
	     bpf_map_update_elem(nopre_fd, &key, &value, BPF_NOEXIST));
	key = 2, value = 200;
	CALL("bpf_map_update_elem(key 2, 200, BPF_ANY)",
	     bpf_map_update_elem(nopre_fd, &key, &value, BPF_ANY));
	/* Two entries: full. A new key is E2BIG, a replacement is fine. */
	key = 3, value = 300;
	CALL("bpf_map_update_elem(key 3, 300, BPF_ANY) [full]",
	     bpf_map_update_elem(nopre_fd, &key, &value, BPF_ANY));
	key = 2, value = 222;
	CALL("bpf_map_update_elem(key 2, 222, BPF_EXIST)",
	     bpf_map_update_elem(nopre_fd, &key, &value, BPF_EXIST));
	value = 0;
	CALL("bpf_map_lookup_elem(key 2)", bpf_map_lookup_elem(nopre_fd, &key, &value));
	printf("    value=%llu\n", (unsigned long long)value);
	key = 1;
	CALL("bpf_map_delete_elem(key 1)", bpf_map_delete_elem(nopre_fd, &key));
	CALL("bpf_map_delete_elem(key 1) [again]", bpf_map_delete_elem(nopre_fd, &key));
	/* One key left, so the walk's order is fixed: NULL gives 2, 2 is the last. */
	{
		__u32 next = 0;
		CALL("bpf_map_get_next_key(NULL)", bpf_map_get_next_key(nopre_fd, NULL, &next));
		printf("    next=%u\n", next);
		CALL("bpf_map_get_next_key(key 2)", bpf_map_get_next_key(nopre_fd, &next, &next));
	}

	printf("== 3. an LRU hash: a full map evicts instead of failing\n");
	lru_fd = CALL("bpf_map_create(LRU_HASH, \"lru\", key 4, value 8, max_entries 64)",
		      bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "lru", 4, 8, 64, NULL));
	show_info(lru_fd);
	{
		/* Four times max_entries distinct keys: every update succeeds. Which keys are
		 * evicted depends on per-CPU free lists (and the CPU we run on), so print only
		 * what is certain: the count stays within max_entries and the newest key is in. */
		int ok = 0;
		for (key = 0; key < 256; key++) {
			value = key;
			if (bpf_map_update_elem(lru_fd, &key, &value, BPF_ANY) == 0)
				ok++;
		}
		int n = count_keys(lru_fd, 4);
		printf("    256 updates ok: %d, entries <= 64: %s, at least one: %s\n", ok,
		       n <= 64 ? "yes" : "no", n > 0 ? "yes" : "no");
		key = 255, value = 0;
		CALL("bpf_map_lookup_elem(key 255) [the newest]",
		     bpf_map_lookup_elem(lru_fd, &key, &value));
		printf("    value=%llu\n", (unsigned long long)value);
		/* BPF_NOEXIST still means "only if absent". */
		CALL("bpf_map_update_elem(key 255, BPF_NOEXIST)",
		     bpf_map_update_elem(lru_fd, &key, &value, BPF_NOEXIST));
	}

	printf("== 4. a per-CPU array: one value per possible CPU\n");
	pcpu_fd = CALL("bpf_map_create(PERCPU_ARRAY, \"pcpu\", key 4, value 8, max_entries 4)",
		       bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "pcpu", 4, 8, 4, NULL));
	show_info(pcpu_fd);
	{
		/* User space reads and writes all CPUs' copies at once: a buffer of
		 * libbpf_num_possible_cpus() values, each rounded up to 8 bytes. */
		int ncpus = libbpf_num_possible_cpus();
		__u64 *vals = calloc(ncpus > 0 ? ncpus : 1, sizeof(__u64));
		int good = 1;
		printf("    libbpf_num_possible_cpus() > 0: %s\n", ncpus > 0 ? "yes" : "no");
		for (int i = 0; i < ncpus; i++)
			vals[i] = 1000 + i;
		key = 1;
		CALL("bpf_map_update_elem(key 1, 1000+cpu)",
		     bpf_map_update_elem(pcpu_fd, &key, vals, BPF_ANY));
		memset(vals, 0xff, ncpus * sizeof(__u64));
		CALL("bpf_map_lookup_elem(key 1)", bpf_map_lookup_elem(pcpu_fd, &key, vals));
		for (int i = 0; i < ncpus; i++)
			good &= vals[i] == (__u64)(1000 + i);
		printf("    every CPU's value is 1000+cpu: %s\n", good ? "yes" : "no");
		/* An element never written is zero on every CPU. */
		key = 2, good = 1;
		memset(vals, 0xff, ncpus * sizeof(__u64));
		CALL("bpf_map_lookup_elem(key 2)", bpf_map_lookup_elem(pcpu_fd, &key, vals));
		for (int i = 0; i < ncpus; i++)
			good &= vals[i] == 0;
		printf("    every CPU's value is 0: %s\n", good ? "yes" : "no");
		key = 4;
		CALL("bpf_map_update_elem(key 4) [past the end]",
		     bpf_map_update_elem(pcpu_fd, &key, vals, BPF_ANY));
		free(vals);
	}

	printf("== 5. an LPM trie: longest prefix match on IPv4 addresses\n");
	/* The key is struct bpf_lpm_trie_key with 4 bytes of data; the trie requires
	 * BPF_F_NO_PREALLOC. */
	lpm_fd = CALL("bpf_map_create(LPM_TRIE, \"lpm\", key 8, value 8, max_entries 16, NO_PREALLOC)",
		      bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "lpm", sizeof(struct lpm_key), 8, 16,
				     &nopre_opts));
	show_info(lpm_fd);
	{
		struct lpm_key prefixes[] = { cidr(8, 10, 0, 0, 0), cidr(16, 10, 1, 0, 0),
					      cidr(24, 192, 168, 0, 0) };
		struct lpm_key addrs[] = { cidr(32, 10, 1, 2, 3), cidr(32, 10, 2, 0, 1),
					   cidr(32, 192, 168, 0, 77), cidr(32, 11, 0, 0, 1) };
		struct lpm_key k, next;
		void *prev = NULL;
		int rc;
		for (int i = 0; i < 3; i++) {
			value = i + 1;
			snprintf(label, sizeof(label), "bpf_map_update_elem(%s, %d)",
				 cidr_str(&prefixes[i]), i + 1);
			CALL(label, bpf_map_update_elem(lpm_fd, &prefixes[i], &value, BPF_ANY));
		}
		/* A prefix length past the key's 32 bits is EINVAL. */
		k = cidr(33, 10, 0, 0, 0);
		CALL("bpf_map_update_elem(10.0.0.0/33)",
		     bpf_map_update_elem(lpm_fd, &k, &value, BPF_ANY));
		/* A lookup of an address (a /32) finds the longest prefix that holds it. */
		for (int i = 0; i < 4; i++) {
			value = 0;
			snprintf(label, sizeof(label), "bpf_map_lookup_elem(%s)", cidr_str(&addrs[i]));
			CALL(label, bpf_map_lookup_elem(lpm_fd, &addrs[i], &value));
			printf("    value=%llu\n", (unsigned long long)value);
		}
		/* The trie's walk order is fixed by its shape (no hash seed): print it as is. */
		printf("    walk:");
		while ((rc = bpf_map_get_next_key(lpm_fd, prev, &next)) == 0) {
			printf(" %s", cidr_str(&next));
			k = next;
			prev = &k;
		}
		printf(" (end: %s)\n", errname(-rc));
		/* Delete the /16: 10.1.2.3 falls back to the /8. */
		CALL("bpf_map_delete_elem(10.1.0.0/16)", bpf_map_delete_elem(lpm_fd, &prefixes[1]));
		CALL("bpf_map_delete_elem(10.1.0.0/16) [again]",
		     bpf_map_delete_elem(lpm_fd, &prefixes[1]));
		value = 0;
		CALL("bpf_map_lookup_elem(10.1.2.3/32)", bpf_map_lookup_elem(lpm_fd, &addrs[0], &value));
		printf("    value=%llu\n", (unsigned long long)value);
	}

	printf("== 6. a queue: bpf_map_lookup_and_delete_elem() pops\n");
	queue_fd = CALL("bpf_map_create(QUEUE, \"q\", key 0, value 8, max_entries 4)",
			bpf_map_create(BPF_MAP_TYPE_QUEUE, "q", 0, 8, 4, NULL));
	for (value = 10; value <= 30; value += 10) {
		snprintf(label, sizeof(label), "bpf_map_update_elem(NULL, %llu) [push]",
			 (unsigned long long)value);
		CALL(label, bpf_map_update_elem(queue_fd, NULL, &value, BPF_ANY));
	}
	value = 0;
	CALL("bpf_map_lookup_elem(NULL) [peek]", bpf_map_lookup_elem(queue_fd, NULL, &value));
	printf("    value=%llu\n", (unsigned long long)value);
	for (int i = 0; i < 4; i++) {
		value = 0;
		CALL("bpf_map_lookup_and_delete_elem(NULL) [pop]",
		     bpf_map_lookup_and_delete_elem(queue_fd, NULL, &value));
		printf("    value=%llu\n", (unsigned long long)value);
	}

	printf("== 7. bpf_map_lookup_batch() on a hash\n");
	batch_fd = CALL("bpf_map_create(HASH, \"batch\", key 4, value 8, max_entries 32)",
			bpf_map_create(BPF_MAP_TYPE_HASH, "batch", 4, 8, 32, NULL));
	for (key = 1; key <= 10; key++) {
		value = key * key;
		bpf_map_update_elem(batch_fd, &key, &value, BPF_ANY);
	}
	printf("    10 keys added: 1..10 -> key*key\n");
	{
		/* Batches continue from the token the previous call left in out_batch (for a
		 * hash, a bucket index); the last batch ends with ENOENT. With room for all 32
		 * entries, the first call returns everything. Entries come in bucket order:
		 * sort them. */
		__u32 keys[32], out_batch = 0, count, total = 0;
		__u64 vals[32];
		struct kv kv[32];
		void *in_batch = NULL;
		int rc;
		do {
			count = 32 - total;
			rc = bpf_map_lookup_batch(batch_fd, in_batch, &out_batch, keys + total,
						  vals + total, &count, NULL);
			if (rc && errno != ENOENT)
				break;
			total += count;
			in_batch = &out_batch;
		} while (rc == 0 && total < 32);
		report("bpf_map_lookup_batch [last call]", rc, errno);
		printf("    %u entries:", total);
		for (__u32 i = 0; i < total; i++)
			kv[i].key = keys[i], kv[i].value = vals[i];
		qsort(kv, total, sizeof(kv[0]), cmp_kv);
		for (__u32 i = 0; i < total; i++)
			printf(" %u=%llu", kv[i].key, (unsigned long long)kv[i].value);
		printf("\n");
		/* A zero count is EINVAL. */
		count = 0;
		CALL("bpf_map_lookup_batch(count 0)",
		     bpf_map_lookup_batch(batch_fd, NULL, &out_batch, keys, vals, &count, NULL));
	}

	printf("== 8. bpf_map_freeze(): no more writes from user space\n");
	frozen_fd = CALL("bpf_map_create(ARRAY, \"frozen\", key 4, value 8, max_entries 2)",
			 bpf_map_create(BPF_MAP_TYPE_ARRAY, "frozen", 4, 8, 2, NULL));
	key = 0, value = 7;
	CALL("bpf_map_update_elem(key 0, 7)", bpf_map_update_elem(frozen_fd, &key, &value, BPF_ANY));
	CALL("bpf_map_freeze", bpf_map_freeze(frozen_fd));
	CALL("bpf_map_freeze [again]", bpf_map_freeze(frozen_fd));
	value = 8;
	CALL("bpf_map_update_elem(key 0, 8) [frozen]",
	     bpf_map_update_elem(frozen_fd, &key, &value, BPF_ANY));
	value = 0;
	CALL("bpf_map_lookup_elem(key 0) [reads still work]",
	     bpf_map_lookup_elem(frozen_fd, &key, &value));
	printf("    value=%llu\n", (unsigned long long)value);

	printf("== 9. bpf_obj_pin() and bpf_obj_get() under PINDIR\n");
	snprintf(path, sizeof(path), "%s/lbc_frozen", pindir);
	CALL("bpf_obj_pin(frozen, PINDIR/lbc_frozen)", bpf_obj_pin(frozen_fd, path));
	CALL("bpf_obj_pin(frozen, PINDIR/lbc_frozen) [again]", bpf_obj_pin(frozen_fd, path));
	pinned_fd = CALL("bpf_obj_get(PINDIR/lbc_frozen)", bpf_obj_get(path));
	/* The pin opens the same map: same id, same value, still frozen. */
	printf("    same map: %s\n", map_id(pinned_fd) == map_id(frozen_fd) ? "yes" : "no");
	key = 0, value = 0;
	CALL("bpf_map_lookup_elem(pinned, key 0)", bpf_map_lookup_elem(pinned_fd, &key, &value));
	printf("    value=%llu\n", (unsigned long long)value);
	CALL("bpf_map_update_elem(pinned, key 0) [still frozen]",
	     bpf_map_update_elem(pinned_fd, &key, &value, BPF_ANY));
	CALL("unlink(PINDIR/lbc_frozen)", unlink(path));
	CALL("bpf_obj_get(PINDIR/lbc_frozen) [unlinked]", bpf_obj_get(path));

	printf("== 10. bpf_map_get_next_id() + bpf_map_get_fd_by_id(): find our map by name\n");
	{
		/* Walk every map id on the system, open each and read its name. Print no id,
		 * only whether our map (section 1) was found, once, under its own id. */
		__u32 id = 0;
		int found = 0, same = 0, walked = 0, rc;
		while ((rc = bpf_map_get_next_id(id, &id)) == 0) {
			struct bpf_map_info info;
			__u32 len = sizeof(info);
			int mfd = bpf_map_get_fd_by_id(id);
			walked++;
			if (mfd < 0)
				continue; /* gone meanwhile */
			memset(&info, 0, sizeof(info));
			if (bpf_obj_get_info_by_fd(mfd, &info, &len) == 0 &&
			    strcmp(info.name, name) == 0) {
				found++;
				same += info.id == our_id;
			}
			close(mfd);
		}
		printf("    walk ended with %s, maps seen >= 8: %s\n", errname(-rc),
		       walked >= 8 ? "yes" : "no");
		printf("    \"lbc_PID\": %s, same id as ours: %s\n",
		       found == 1 ? "found" : found ? "found more than once" : "not found",
		       same == 1 ? "yes" : "no");
		CALL("bpf_map_get_fd_by_id(0)", bpf_map_get_fd_by_id(0));
	}

	printf("== 11. dup() and close() of a map fd\n");
	/* A dup'd fd refers to the same map; closing the original leaves it usable. */
	dup_fd = CALL("dup(lbc_PID)", dup(fd));
	printf("    same map: %s\n", map_id(dup_fd) == our_id ? "yes" : "no");
	key = 5, value = 55;
	CALL("bpf_map_update_elem(dup, key 5, 55)", bpf_map_update_elem(dup_fd, &key, &value, BPF_ANY));
	CALL("close(lbc_PID)", close(fd));
	CALL("bpf_map_lookup_elem(closed fd, key 5)", bpf_map_lookup_elem(fd, &key, &value));
	value = 0;
	CALL("bpf_map_lookup_elem(dup, key 5)", bpf_map_lookup_elem(dup_fd, &key, &value));
	printf("    value=%llu\n", (unsigned long long)value);
	/* The closed number is the lowest free one: the next map gets it. */

	printf("== 12. fork(): two children update one map the parent created\n");
	shared_fd = CALL("bpf_map_create(HASH, \"shared\", key 4, value 8, max_entries 4096)",
			 bpf_map_create(BPF_MAP_TYPE_HASH, "shared", 4, 8, 4096, NULL));
	{
		/* Each child adds N distinct keys (child c: c*N .. c*N+N-1, value 3*key) with
		 * BPF_NOEXIST, and exits with 0 if every update succeeded. The children run at
		 * the same time but never touch the same key, so no atomics are needed. */
		enum { N = 1000 };
		pid_t pids[2];
		fflush(stdout);
		for (int c = 0; c < 2; c++) {
			pids[c] = fork();
			if (pids[c] == 0) {
				int bad = 0;
				for (__u32 k = c * N; k < (__u32)(c * N + N); k++) {
					__u64 v = 3ull * k;
					bad += bpf_map_update_elem(shared_fd, &k, &v, BPF_NOEXIST) != 0;
				}
				_exit(bad ? 1 : 0);
			}
			if (pids[c] < 0)
				printf("    fork failed\n");
		}
		for (int c = 0; c < 2; c++) {
			int status = 0;
			if (pids[c] > 0 && waitpid(pids[c], &status, 0) == pids[c])
				printf("    child %d: %s\n", c,
				       WIFEXITED(status) ? (WEXITSTATUS(status) == 0
								    ? "1000 updates ok"
								    : "some updates failed")
							 : "killed");
		}
		/* The parent sees all 2N entries, each with its child's value. */
		int n = count_keys(shared_fd, 4), good = 1;
		for (__u32 k = 0; k < 2 * N; k++) {
			__u64 v = 0;
			good &= bpf_map_lookup_elem(shared_fd, &k, &v) == 0 && v == 3ull * k;
		}
		printf("    parent counts %d entries, every value is 3*key: %s\n", n,
		       good ? "yes" : "no");
	}

	close(dup_fd);
	close(nopre_fd);
	close(lru_fd);
	close(pcpu_fd);
	close(lpm_fd);
	close(queue_fd);
	close(batch_fd);
	close(frozen_fd);
	close(pinned_fd);
	close(shared_fd);
	return 0;
}
