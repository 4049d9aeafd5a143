/* seed_examples.c: the bpf(2) map examples a learner meets first, as one program.
 *
 * The calls are those of the blog notes in /work/shared/seeds (sockex1's array of counters,
 * "Linux Observability with BPF" chapter 3, the bpf_create_map / bpf_lookup_elem /
 * bpf_update_elem / bpf_delete_elem wrappers, pinning /sys/fs/bpf/my_array) and of the
 * tests/scenarios/walkthrough scenarios, made with raw
 * syscall(__NR_bpf, cmd, &attr, sizeof(attr)) and union bpf_attr from <linux/bpf.h>, as the
 * seeds do. No libbpf.
 *
 * Every call prints one line `name: ret=R errno=NAME` (errno=0 when the call succeeded),
 * followed by the values it read. The output is deterministic: no map ids, no pointers, hash
 * keys are printed sorted. fd numbers are printed on purpose: a model must hand out the same
 * numbers as the kernel (the lowest free fd).
 *
 * Usage: seed_examples [PINDIR]   (PINDIR is a bpffs directory, default /sys/fs/bpf)
 * Build: gcc -O1 -Wall -o seed_examples tests/preload/seed_examples.c
 */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "errname.h"

/* The seeds' bpf(): the raw system call. The errno is saved at once, before any printf. */
static int last_errno;
static long bpf(int cmd, union bpf_attr *attr, unsigned int size)
{
	long ret = syscall(__NR_bpf, cmd, attr, size);
	last_errno = ret < 0 ? errno : 0;
	return ret;
}

/* One line per call: what was called, what came back. */
static void show(const char *name, long ret)
{
	printf("%s: ret=%ld errno=%s\n", name, ret, errname(last_errno));
}

static uint64_t ptr_to_u64(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* The seeds' wrappers (bpf_create_map, bpf_lookup_elem, ...), each with a zeroed attr: the
 * kernel rejects nonzero bytes past the fields of the command (CHECK_ATTR). */
static long create_map(uint32_t type, uint32_t key_size, uint32_t value_size,
		       uint32_t max_entries, uint32_t flags)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = type;
	attr.key_size = key_size;
	attr.value_size = value_size;
	attr.max_entries = max_entries;
	attr.map_flags = flags;
	return bpf(BPF_MAP_CREATE, &attr, sizeof(attr));
}

static long elem_cmd(int cmd, int fd, const void *key, void *value, uint64_t flags)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	attr.key = ptr_to_u64(key);
	attr.value = ptr_to_u64(value); /* the same field as next_key */
	attr.flags = flags;
	return bpf(cmd, &attr, sizeof(attr));
}

static long update_elem(int fd, const void *key, const void *value, uint64_t flags)
{
	return elem_cmd(BPF_MAP_UPDATE_ELEM, fd, key, (void *)value, flags);
}

static long lookup_elem(int fd, const void *key, void *value)
{
	return elem_cmd(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0);
}

static long delete_elem(int fd, const void *key)
{
	return elem_cmd(BPF_MAP_DELETE_ELEM, fd, key, NULL, 0);
}

static long get_next_key(int fd, const void *key, void *next_key)
{
	return elem_cmd(BPF_MAP_GET_NEXT_KEY, fd, key, next_key, 0);
}

static long lookup_and_delete_elem(int fd, const void *key, void *value)
{
	return elem_cmd(BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, key, value, 0);
}

static long obj_pin(int fd, const char *path)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.pathname = ptr_to_u64(path);
	attr.bpf_fd = fd;
	return bpf(BPF_OBJ_PIN, &attr, sizeof(attr));
}

static long obj_get(const char *path)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.pathname = ptr_to_u64(path);
	return bpf(BPF_OBJ_GET, &attr, sizeof(attr));
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *pindir = argc > 1 ? argv[1] : "/sys/fs/bpf";
	char pin_path[4096], missing_path[4096];
	int key, value, next, hash_fd, array_fd, queue_fd, pinned_fd;
	long ret;

	/* stdout may be a pipe: line-buffer it so nothing is held back or duplicated. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("== 1. BPF_MAP_CREATE\n");
	/* The book's hash map: int keys and values, 100 entries, allocated on demand. The fd is
	 * the lowest free one: 3 when only stdin/stdout/stderr are open. */
	ret = create_map(BPF_MAP_TYPE_HASH, sizeof(int), sizeof(int), 100, BPF_F_NO_PREALLOC);
	show("map_create(HASH, key 4, value 4, max_entries 100, NO_PREALLOC)", ret);
	hash_fd = ret;
	/* The pinning example's array: 100 int values, preallocated and zero-filled. */
	ret = create_map(BPF_MAP_TYPE_ARRAY, sizeof(int), sizeof(int), 100, 0);
	show("map_create(ARRAY, key 4, value 4, max_entries 100)", ret);
	array_fd = ret;
	/* Common mistakes: an array key is an index and must be 4 bytes; a map needs room for
	 * at least one element. Both are EINVAL and use no fd. */
	ret = create_map(BPF_MAP_TYPE_ARRAY, 8, sizeof(int), 100, 0);
	show("map_create(ARRAY, key 8) [array keys are 4 bytes]", ret);
	ret = create_map(BPF_MAP_TYPE_HASH, sizeof(int), sizeof(int), 0, 0);
	show("map_create(HASH, max_entries 0)", ret);
	if (hash_fd < 0 || array_fd < 0) {
		printf("cannot go on without the two maps\n");
		return 1;
	}

	printf("== 2. BPF_MAP_UPDATE_ELEM and its flags\n");
	/* BPF_ANY (0) creates or replaces. */
	key = 1, value = 1234;
	show("update(hash, key 1, value 1234, BPF_ANY)", update_elem(hash_fd, &key, &value, BPF_ANY));
	/* BPF_NOEXIST (1) only creates: key 1 is there, so EEXIST. */
	value = 1;
	show("update(hash, key 1, value 1, BPF_NOEXIST)",
	     update_elem(hash_fd, &key, &value, BPF_NOEXIST));
	/* BPF_EXIST (2) only replaces: key 2 is not there, so ENOENT; key 1 is. */
	key = 2, value = 2;
	show("update(hash, key 2, value 2, BPF_EXIST)", update_elem(hash_fd, &key, &value, BPF_EXIST));
	key = 1, value = 5678;
	show("update(hash, key 1, value 5678, BPF_EXIST)",
	     update_elem(hash_fd, &key, &value, BPF_EXIST));
	/* Flags are one of the three, not a combination: 3 is EINVAL. */
	show("update(hash, key 1, value 5678, flags 3)", update_elem(hash_fd, &key, &value, 3));
	/* The pinning example's update: key 1 of the array gets 1234. */
	key = 1, value = 1234;
	show("update(array, key 1, value 1234, BPF_ANY)",
	     update_elem(array_fd, &key, &value, BPF_ANY));
	/* Every array index below max_entries exists: BPF_NOEXIST can never hold... */
	show("update(array, key 1, value 1234, BPF_NOEXIST)",
	     update_elem(array_fd, &key, &value, BPF_NOEXIST));
	/* ...and an index past the end is E2BIG. */
	key = 100;
	show("update(array, key 100, BPF_ANY) [past the end]",
	     update_elem(array_fd, &key, &value, BPF_ANY));

	printf("== 3. BPF_MAP_LOOKUP_ELEM\n");
	/* A hit copies the value out: key 1 now holds 5678. */
	key = 1, value = -1;
	show("lookup(hash, key 1)", lookup_elem(hash_fd, &key, &value));
	printf("  value=%d\n", value);
	/* A miss is ENOENT and leaves the buffer alone. */
	key = 2, value = -1;
	show("lookup(hash, key 2) [never added]", lookup_elem(hash_fd, &key, &value));
	printf("  value=%d\n", value);
	key = 1, value = -1;
	show("lookup(array, key 1)", lookup_elem(array_fd, &key, &value));
	printf("  value=%d\n", value);
	/* An array element never written reads as zero (sockex1's counters start at 0). */
	key = 6, value = -1;
	show("lookup(array, key 6) [never written]", lookup_elem(array_fd, &key, &value));
	printf("  value=%d\n", value);
	key = 100;
	show("lookup(array, key 100) [past the end]", lookup_elem(array_fd, &key, &value));
	/* The key pointer is user memory the kernel copies from: an unmapped address is
	 * EFAULT, not a crash. So is an unmapped value buffer on a hit. */
	show("lookup(hash, key=(void *)8)", lookup_elem(hash_fd, (void *)8, &value));
	key = 1;
	show("lookup(hash, key 1, value=(void *)8)", lookup_elem(hash_fd, &key, (void *)8));

	printf("== 4. BPF_MAP_GET_NEXT_KEY\n");
	/* Three more keys: the hash now holds 1, 10, 20, 30. */
	for (key = 10; key <= 30; key += 10) {
		value = key * 100;
		char name[64];
		snprintf(name, sizeof(name), "update(hash, key %d, value %d, BPF_ANY)", key, value);
		show(name, update_elem(hash_fd, &key, &value, BPF_ANY));
	}
	/* Walk from NULL until ENOENT. The order is the hash table's, which depends on a
	 * random seed: print the keys sorted, and only the end of the walk. */
	{
		int keys[16], n = 0, first;
		void *prev = NULL;
		while (n < 16 && (ret = get_next_key(hash_fd, prev, &keys[n])) == 0) {
			prev = &keys[n];
			n++;
		}
		/* The last key has no next one: ENOENT ends the walk. */
		show("get_next_key(hash, last key) [end of the walk]", ret);
		first = keys[0];
		qsort(keys, n, sizeof(keys[0]), cmp_int);
		printf("  %d keys, sorted:", n);
		for (int i = 0; i < n; i++)
			printf(" %d", keys[i]);
		printf("\n");
		/* A key that is not in the map starts the walk over from the first key. */
		key = 99;
		show("get_next_key(hash, key 99) [not in the map]", get_next_key(hash_fd, &key, &next));
		printf("  next is the first key: %s\n", next == first ? "yes" : "no");
	}
	/* An array's order is its index order. */
	show("get_next_key(array, NULL)", get_next_key(array_fd, NULL, &next));
	printf("  next=%d\n", next);
	key = 5;
	show("get_next_key(array, key 5)", get_next_key(array_fd, &key, &next));
	printf("  next=%d\n", next);
	key = 99;
	show("get_next_key(array, key 99) [the last index]", get_next_key(array_fd, &key, &next));
	key = 100;
	show("get_next_key(array, key 100) [past the end]", get_next_key(array_fd, &key, &next));
	printf("  next=%d\n", next);

	printf("== 5. BPF_MAP_DELETE_ELEM\n");
	key = 1;
	show("delete(hash, key 1)", delete_elem(hash_fd, &key));
	show("delete(hash, key 1) [again]", delete_elem(hash_fd, &key));
	show("lookup(hash, key 1) [deleted]", lookup_elem(hash_fd, &key, &value));
	/* Array elements cannot be deleted. */
	show("delete(array, key 1)", delete_elem(array_fd, &key));

	printf("== 6. a QUEUE map: push, peek, pop\n");
	/* No keys: key_size 0 and a NULL key. Update pushes, lookup peeks at the oldest value,
	 * lookup_and_delete pops it. */
	ret = create_map(BPF_MAP_TYPE_QUEUE, 0, sizeof(int), 2, 0);
	show("map_create(QUEUE, key 0, value 4, max_entries 2)", ret);
	queue_fd = ret;
	value = 1;
	show("push(queue, 1)", update_elem(queue_fd, NULL, &value, BPF_ANY));
	value = 2;
	show("push(queue, 2)", update_elem(queue_fd, NULL, &value, BPF_ANY));
	/* Full: E2BIG, unless BPF_EXIST asks to drop the oldest value. */
	value = 3;
	show("push(queue, 3) [full]", update_elem(queue_fd, NULL, &value, BPF_ANY));
	show("push(queue, 3, BPF_EXIST) [drops 1]", update_elem(queue_fd, NULL, &value, BPF_EXIST));
	value = -1;
	show("peek(queue)", lookup_elem(queue_fd, NULL, &value));
	printf("  value=%d\n", value);
	for (int i = 0; i < 3; i++) {
		value = -1;
		show("pop(queue)", lookup_and_delete_elem(queue_fd, NULL, &value));
		printf("  value=%d\n", value);
	}
	/* A queue has no keys to delete or walk. */
	show("delete(queue, NULL)", delete_elem(queue_fd, NULL));
	show("get_next_key(queue, NULL)", get_next_key(queue_fd, NULL, &next));

	printf("== 7. BPF_OBJ_PIN and BPF_OBJ_GET\n");
	snprintf(pin_path, sizeof(pin_path), "%s/my_array", pindir);
	snprintf(missing_path, sizeof(missing_path), "%s/my_array_nothing", pindir);
	/* The seed's bpf_obj_pin(fd, "/sys/fs/bpf/my_array"): the path now holds the map. */
	show("pin(array, PINDIR/my_array)", obj_pin(array_fd, pin_path));
	/* A path holds one object: pinning there again is EEXIST. */
	show("pin(array, PINDIR/my_array) [again]", obj_pin(array_fd, pin_path));
	/* Close the only fd: the pin keeps the map alive. Its fd number is free again. */
	ret = close(array_fd);
	last_errno = ret < 0 ? errno : 0;
	show("close(array)", ret);
	/* Open it again from the path: a new fd (the lowest free one, the old number), and
	 * the value written through the old fd is there. */
	ret = obj_get(pin_path);
	show("obj_get(PINDIR/my_array)", ret);
	pinned_fd = ret;
	key = 1, value = -1;
	show("lookup(pinned, key 1)", lookup_elem(pinned_fd, &key, &value));
	printf("  value=%d\n", value);
	/* Nothing is pinned there: ENOENT. */
	show("obj_get(PINDIR/my_array_nothing)", obj_get(missing_path));
	/* An unmapped path pointer is EFAULT. */
	{
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.pathname = 8;
		show("obj_get(pathname=(void *)8)", bpf(BPF_OBJ_GET, &attr, sizeof(attr)));
	}
	/* The pin is a file: unlink removes it (the map lives on while pinned_fd is open). */
	ret = unlink(pin_path);
	last_errno = ret < 0 ? errno : 0;
	show("unlink(PINDIR/my_array)", ret);
	show("obj_get(PINDIR/my_array) [unlinked]", obj_get(pin_path));

	printf("== 8. closed and never-opened fds\n");
	/* The fd of a closed map is EBADF, as is an fd that was never open. */
	key = 1;
	ret = close(hash_fd);
	last_errno = ret < 0 ? errno : 0;
	show("close(hash)", ret);
	show("lookup(closed hash fd, key 1)", lookup_elem(hash_fd, &key, &value));
	show("lookup(fd 1000, key 1) [never opened]", lookup_elem(1000, &key, &value));
	/* An open file that is not a map (stdout) is EINVAL. */
	show("lookup(fd 1, key 1) [stdout, not a map]", lookup_elem(1, &key, &value));
	close(pinned_fd);
	close(queue_fd);
	return 0;
}
