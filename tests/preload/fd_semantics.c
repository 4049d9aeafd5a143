/* fd_semantics.c: what a map fd is, beyond the bpf(2) calls made on it.
 *
 * A map fd is an ordinary fd of the process: it takes the lowest free number, dup(), dup2()
 * and fcntl(F_DUPFD_CLOEXEC) copy it, it is O_CLOEXEC from birth, it is shared with a fork()ed
 * child and closed at exit, and the map lives as long as some fd (or a pin) holds it. Tools
 * also look at it outside bpf(2): /proc/self/fdinfo/N, readlink(/proc/self/fd/N), statfs()
 * of the bpffs. And the kernel copies attrs, keys and values from and to user memory, so a
 * bad pointer is EFAULT and never a crash. Sections:
 *   1. fd numbering: lowest free number, dup, dup2, F_DUPFD_CLOEXEC, FD_CLOEXEC
 *   2. refcount: a map goes away with its last fd, or its pin when pinned
 *   3. exec boundary: the program execs itself; the O_CLOEXEC map fd is gone afterwards, the
 *      one whose FD_CLOEXEC was cleared still works (sections 4-7 run in the new image)
 *   4. threads: 4 pthreads updating and looking up one hash map at once; maps created at once
 *   5. fork: the child shares, closes, and leaves behind map fds
 *   6. what tools read outside bpf(2): fdinfo, readlink, statfs
 *   7. bad pointers: EFAULT for attrs, keys and values in unmapped or read-only memory
 *
 * Every call prints one line `name: ret=R errno=NAME` (errno=0 when the call succeeded),
 * followed by what it read. The output is deterministic: no map ids (they are only passed
 * around and compared), no pointers, no pids, nothing that depends on thread scheduling. fd
 * numbers are printed on purpose: a model must hand out the same numbers as the kernel (the
 * lowest free fd).
 *
 * Usage: fd_semantics [PINDIR]   (PINDIR is a bpffs directory, default /sys/fs/bpf)
 *        (fd_semantics --after-exec CLOEXEC_FD KEPT_FD CLOEXEC_ID KEPT_ID PINDIR is the
 *        program re-executing itself in section 3: not for use by hand)
 * Build: gcc -O1 -Wall -pthread -o fd_semantics tests/preload/fd_semantics.c
 * Run:   tests/preload/run_isolated.sh /tmp/fd_semantics   (as root, on the real kernel)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

#include "errname.h"

/* The raw system call. The errno is returned through *err (threads call this too), saved at
 * once, before any printf. */
static long bpf_err(int cmd, union bpf_attr *attr, unsigned int size, int *err)
{
	long ret = syscall(__NR_bpf, cmd, attr, size);
	*err = ret < 0 ? errno : 0;
	return ret;
}

/* The main thread's calls keep their errno here for show(). */
static int last_errno;
static long bpf(int cmd, union bpf_attr *attr, unsigned int size)
{
	return bpf_err(cmd, attr, size, &last_errno);
}

/* One line per call: what was called, what came back. */
static void show(const char *name, long ret)
{
	printf("%s: ret=%ld errno=%s\n", name, ret, errname(last_errno));
}

/* A libc call (close, dup, fcntl, ...): keep its errno like bpf() does. */
static long sys(long ret)
{
	last_errno = ret < 0 ? errno : 0;
	return ret;
}

/* show() with a printf-formatted name. */
static void showf(long ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void showf(long ret, const char *fmt, ...)
{
	char name[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	show(name, ret);
}

static uint64_t ptr_to_u64(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* Each command with a zeroed attr: the kernel rejects nonzero bytes past the fields of the
 * command (CHECK_ATTR). */
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

static long elem_cmd_err(int cmd, int fd, const void *key, void *value, uint64_t flags, int *err)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	attr.key = ptr_to_u64(key);
	attr.value = ptr_to_u64(value); /* the same field as next_key */
	attr.flags = flags;
	return bpf_err(cmd, &attr, sizeof(attr), err);
}

static long update_elem(int fd, const void *key, const void *value, uint64_t flags)
{
	return elem_cmd_err(BPF_MAP_UPDATE_ELEM, fd, key, (void *)value, flags, &last_errno);
}

static long lookup_elem(int fd, const void *key, void *value)
{
	return elem_cmd_err(BPF_MAP_LOOKUP_ELEM, fd, key, value, 0, &last_errno);
}

static long get_next_key(int fd, const void *key, void *next_key)
{
	return elem_cmd_err(BPF_MAP_GET_NEXT_KEY, fd, key, next_key, 0, &last_errno);
}

static long obj_pin(int fd, const char *path)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.pathname = ptr_to_u64(path);
	attr.bpf_fd = fd;
	return bpf(BPF_OBJ_PIN, &attr, sizeof(attr));
}

static long get_fd_by_id(uint32_t id)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_id = id;
	return bpf(BPF_MAP_GET_FD_BY_ID, &attr, sizeof(attr));
}

static long map_freeze(int fd)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = fd;
	return bpf(BPF_MAP_FREEZE, &attr, sizeof(attr));
}

/* BPF_OBJ_GET_INFO_BY_FD: the map's id in *id (never printed). */
static long map_id(int fd, uint32_t *id)
{
	struct bpf_map_info info;
	union bpf_attr attr;
	long ret;
	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = ptr_to_u64(&info);
	ret = bpf(BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr));
	*id = ret == 0 ? info.id : 0;
	return ret;
}

/* Lookup of an int key and an int value, printed. */
static void show_lookup(const char *what, int fd, int key)
{
	int value = -1;
	showf(lookup_elem(fd, &key, &value), "lookup(%s, key %d)", what, key);
	if (last_errno == 0)
		printf("  value=%d\n", value);
}

static void show_update(const char *what, int fd, int key, int value)
{
	showf(update_elem(fd, &key, &value, BPF_ANY), "update(%s, key %d, value %d)", what, key,
	      value);
}

static void show_close(const char *what, int fd)
{
	showf(sys(close(fd)), "close(%s fd %d)", what, fd);
}

/* fcntl(F_GETFD), and whether FD_CLOEXEC is set. */
static void show_cloexec(const char *what, int fd)
{
	long ret = sys(fcntl(fd, F_GETFD));
	showf(ret, "fcntl(%s fd %d, F_GETFD)", what, fd);
	if (ret >= 0)
		printf("  FD_CLOEXEC set: %s\n", (ret & FD_CLOEXEC) ? "yes" : "no");
}

/* BPF_MAP_GET_FD_BY_ID, its fd closed at once. name is the whole label. */
static void show_get_fd_by_id(const char *name, uint32_t id)
{
	long ret = get_fd_by_id(id);
	show(name, ret);
	if (ret >= 0)
		close(ret);
}

/* ---------------------------------------------------------------------------------------- */

static void section1(void)
{
	int a, b, c, d, dupfd, dup2fd, dupfd_cloexec;
	uint32_t d_id;
	long ret;

	printf("== 1. fd numbering\n");
	/* Three arrays: 3, 4, 5 (only stdin/stdout/stderr are open). */
	a = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY a)", a);
	b = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY b)", b);
	c = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY c)", c);
	/* Close the middle one: the next map takes its number back, not 6. */
	show_close("b", b);
	d = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY d) [lowest free number]", d);
	/* A new map fd is O_CLOEXEC. */
	show_cloexec("d", d);

	/* dup(): the lowest free number (6), the same map. dup() does not copy FD_CLOEXEC. */
	dupfd = sys(dup(a));
	showf(dupfd, "dup(a fd %d)", a);
	show_cloexec("dup of a", dupfd);
	show_update("a", a, 0, 111);
	show_lookup("dup of a", dupfd, 0);
	/* dup2() to a number of our choice. */
	dup2fd = sys(dup2(a, 20));
	showf(dup2fd, "dup2(a fd %d, 20)", a);
	show_cloexec("dup2 of a", dup2fd);
	show_update("dup2 of a", dup2fd, 1, 222);
	show_lookup("a", a, 1);
	/* F_DUPFD_CLOEXEC: the lowest free number at or above 30, with FD_CLOEXEC. */
	dupfd_cloexec = sys(fcntl(a, F_DUPFD_CLOEXEC, 30));
	showf(dupfd_cloexec, "fcntl(a fd %d, F_DUPFD_CLOEXEC, 30)", a);
	show_cloexec("F_DUPFD_CLOEXEC of a", dupfd_cloexec);
	show_lookup("F_DUPFD_CLOEXEC of a", dupfd_cloexec, 1);
	/* The copies are the map, not a snapshot: closing the first fd leaves it alive. */
	show_close("a", a);
	show_lookup("closed a", a, 0);
	show_lookup("dup2 of a", dup2fd, 0);

	/* dup2() onto another map's only fd: that map goes away, and the number is now the
	 * first map. */
	show_update("d", d, 0, 444);
	show("obj_get_info_by_fd(d) [its id, not printed]", map_id(d, &d_id));
	ret = sys(dup2(dupfd, d));
	showf(ret, "dup2(dup of a fd %d, d fd %d) [d was its map's only fd]", dupfd, d);
	show_lookup("d, now the first map", d, 0);
	show_get_fd_by_id("get_fd_by_id(d's old map's id) [its only fd replaced by dup2]", d_id);
	/* The same number twice: dup2 does nothing and returns it. */
	ret = sys(dup2(d, d));
	showf(ret, "dup2(d fd %d, d fd %d)", d, d);
	show_lookup("d", d, 1);

	show_close("c", c);
	show_close("d", d);
	show_close("dup of a", dupfd);
	show_close("dup2 of a", dup2fd);
	show_close("F_DUPFD_CLOEXEC of a", dupfd_cloexec);
	/* All closed: the next map is 3 again. */
	ret = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY) [all closed]", ret);
	show_close("it", ret);
}

/* ---------------------------------------------------------------------------------------- */

static void section2(const char *pindir)
{
	char pin_path[4096];
	uint32_t id, id2;
	int m, m2, again;
	long ret;

	printf("== 2. refcount\n");
	m = create_map(BPF_MAP_TYPE_HASH, 4, 4, 8, 0);
	show("map_create(HASH m)", m);
	show_update("m", m, 7, 70);
	ret = map_id(m, &id);
	show("obj_get_info_by_fd(m) [its id, not printed]", ret);
	m2 = sys(dup(m));
	showf(m2, "dup(m fd %d)", m);
	/* One of two fds closed: the map is still there, and by id too. */
	show_close("m", m);
	again = get_fd_by_id(id);
	show("get_fd_by_id(m's id) [one fd of two closed]", again);
	show_lookup("m by id", again, 7);
	show_close("m by id", again);
	show_close("dup of m", m2);
	/* Every fd closed: the map is gone. */
	show_get_fd_by_id("get_fd_by_id(m's id) [every fd closed]", id);

	/* Pinned: the pin holds the map when no fd does. */
	snprintf(pin_path, sizeof(pin_path), "%s/fd_semantics_pin", pindir);
	m = create_map(BPF_MAP_TYPE_HASH, 4, 4, 8, 0);
	show("map_create(HASH p)", m);
	show_update("p", m, 8, 80);
	ret = map_id(m, &id2);
	show("obj_get_info_by_fd(p) [its id, not printed]", ret);
	show("pin(p, PINDIR/fd_semantics_pin)", obj_pin(m, pin_path));
	show_close("p", m);
	again = get_fd_by_id(id2);
	show("get_fd_by_id(p's id) [pinned, no fd]", again);
	show_lookup("p by id", again, 8);
	show_close("p by id", again);
	ret = sys(unlink(pin_path));
	show("unlink(PINDIR/fd_semantics_pin)", ret);
	/* The kernel drops the pin's reference when the bpffs inode is freed, after an RCU
	 * grace period: poll (at most 5 s) for the map to go, and print only where it ends. A
	 * successful poll makes an fd, closed at once. */
	for (int i = 0; i < 500; i++) {
		ret = get_fd_by_id(id2);
		if (ret < 0)
			break;
		close(ret);
		usleep(10000);
	}
	show("get_fd_by_id(p's id) [pin unlinked, no fd; polled]", ret < 0 ? ret : 0);
}

/* ---------------------------------------------------------------------------------------- */

/* Before the exec: two maps, one left O_CLOEXEC, one with FD_CLOEXEC cleared; then the
 * program execs itself with their fds and ids on the command line. Only returns if the exec
 * fails. */
static void section3_before(char *argv0, const char *pindir)
{
	char a_fd[16], k_fd[16], a_id[16], k_id[16];
	uint32_t cid, kid;
	int closing, kept;
	long ret;

	printf("== 3. exec boundary\n");
	closing = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY x) [stays O_CLOEXEC]", closing);
	show_update("x", closing, 0, 4242);
	kept = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY k) [FD_CLOEXEC to be cleared]", kept);
	show_update("k", kept, 0, 777);
	ret = sys(fcntl(kept, F_SETFD, 0));
	showf(ret, "fcntl(k fd %d, F_SETFD, 0)", kept);
	show_cloexec("x", closing);
	show_cloexec("k", kept);
	ret = map_id(closing, &cid);
	show("obj_get_info_by_fd(x) [its id, not printed]", ret);
	ret = map_id(kept, &kid);
	show("obj_get_info_by_fd(k) [its id, not printed]", ret);

	snprintf(a_fd, sizeof(a_fd), "%d", closing);
	snprintf(k_fd, sizeof(k_fd), "%d", kept);
	snprintf(a_id, sizeof(a_id), "%u", cid);
	snprintf(k_id, sizeof(k_id), "%u", kid);
	printf("execv(/proc/self/exe, --after-exec x k)\n");
	fflush(stdout);
	{
		char *args[] = { argv0, "--after-exec", a_fd, k_fd, a_id, k_id, (char *)pindir,
				 NULL };
		ret = sys(execv("/proc/self/exe", args));
	}
	show("execv(/proc/self/exe) [returned]", ret);
}

/* After the exec: the O_CLOEXEC fd is closed, and its map (that fd was its only one) is gone;
 * the other fd is still the map. */
static void section3_after(int closing, int kept, uint32_t cid, uint32_t kid)
{
	long ret;
	int again;

	printf("-- after exec\n");
	show_lookup("x [O_CLOEXEC, closed by exec]", closing, 0);
	show_cloexec("x", closing);
	show_get_fd_by_id("get_fd_by_id(x's id) [its only fd closed by exec]", cid);
	show_lookup("k [FD_CLOEXEC cleared]", kept, 0);
	show_cloexec("k", kept);
	show_update("k", kept, 1, 778);
	/* The kept map by id: a new fd, the lowest free number (x's). */
	again = get_fd_by_id(kid);
	show("get_fd_by_id(k's id)", again);
	show_lookup("k by id", again, 1);
	/* A map created now takes the next free number. */
	ret = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY) [after exec]", ret);
	show_close("it", ret);
	show_close("k by id", again);
	show_close("k", kept);
	show_get_fd_by_id("get_fd_by_id(k's id) [every fd closed]", kid);
}

/* ---------------------------------------------------------------------------------------- */

#define NTHREADS 4
#define PER_THREAD 2000

static uint64_t thread_value(uint32_t key)
{
	return (uint64_t)key * 2654435761u ^ 0x5a5a5a5a00000000ull;
}

struct worker {
	pthread_t tid;
	int index, fd;
	int update_failed, own_wrong, other_wrong;
	/* The second round: a map of its own. */
	int own_map_fd, own_map_errno, own_map_ok;
};

/* 2000 updates of keys of its own, each looked up at once; and lookups of the keys another
 * thread is writing meanwhile (found or not, depending on timing; but if found, right). */
static void *worker_updates(void *p)
{
	struct worker *w = p;
	for (int i = 0; i < PER_THREAD; i++) {
		uint32_t key = w->index * PER_THREAD + i;
		uint32_t other = ((w->index + 1) % NTHREADS) * PER_THREAD + i;
		uint64_t value = thread_value(key), got;
		int err;
		if (elem_cmd_err(BPF_MAP_UPDATE_ELEM, w->fd, &key, &value, BPF_NOEXIST, &err) != 0)
			w->update_failed++;
		got = 0;
		if (elem_cmd_err(BPF_MAP_LOOKUP_ELEM, w->fd, &key, &got, 0, &err) != 0 ||
		    got != value)
			w->own_wrong++;
		got = 0;
		if (elem_cmd_err(BPF_MAP_LOOKUP_ELEM, w->fd, &other, &got, 0, &err) == 0) {
			if (got != thread_value(other))
				w->other_wrong++;
		} else if (err != ENOENT) {
			w->other_wrong++;
		}
	}
	return NULL;
}

/* Each thread creates a map at the same time as the others, writes its index there and reads
 * it back. */
static void *worker_create(void *p)
{
	struct worker *w = p;
	union bpf_attr attr;
	uint32_t key = 0, value = w->index + 100, got = 0;
	int err;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	w->own_map_fd = bpf_err(BPF_MAP_CREATE, &attr, sizeof(attr), &w->own_map_errno);
	if (w->own_map_fd >= 0 &&
	    elem_cmd_err(BPF_MAP_UPDATE_ELEM, w->own_map_fd, &key, &value, 0, &err) == 0 &&
	    elem_cmd_err(BPF_MAP_LOOKUP_ELEM, w->own_map_fd, &key, &got, 0, &err) == 0 &&
	    got == value)
		w->own_map_ok = 1;
	return NULL;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static void section4(void)
{
	struct worker w[NTHREADS];
	static unsigned char seen[NTHREADS * PER_THREAD];
	int fd, n = 0, dup_keys = 0, out_of_range = 0, wrong_values = 0, fds[NTHREADS];
	uint32_t key, next;
	void *prev = NULL;
	long ret;

	printf("== 4. threads\n");
	fd = create_map(BPF_MAP_TYPE_HASH, 4, 8, 10000, 0);
	show("map_create(HASH, key 4, value 8, max_entries 10000)", fd);
	memset(w, 0, sizeof(w));
	for (int t = 0; t < NTHREADS; t++) {
		w[t].index = t;
		w[t].fd = fd;
		ret = pthread_create(&w[t].tid, NULL, worker_updates, &w[t]);
		printf("pthread_create(thread %d): ret=%ld\n", t, ret);
	}
	for (int t = 0; t < NTHREADS; t++) {
		ret = pthread_join(w[t].tid, NULL);
		printf("pthread_join(thread %d): ret=%ld\n", t, ret);
		printf("  %d updates (BPF_NOEXIST) failed: %d; own keys looked up wrong: %d; "
		       "other thread's keys found wrong: %d\n",
		       PER_THREAD, w[t].update_failed, w[t].own_wrong, w[t].other_wrong);
	}
	/* The walk: every key once, each with its value. */
	memset(seen, 0, sizeof(seen));
	while ((ret = get_next_key(fd, prev, &next)) == 0) {
		uint64_t value = 0;
		n++;
		if (next >= NTHREADS * PER_THREAD)
			out_of_range++;
		else if (seen[next]++)
			dup_keys++;
		if (lookup_elem(fd, &next, &value) != 0 || value != thread_value(next))
			wrong_values++;
		key = next;
		prev = &key;
		if (n > 2 * NTHREADS * PER_THREAD)
			break;
	}
	show("get_next_key(hash, last key) [end of the walk]", ret);
	printf("  keys walked: %d\n", n);
	printf("  each of 0..%d exactly once: %s\n", NTHREADS * PER_THREAD - 1,
	       n == NTHREADS * PER_THREAD && !dup_keys && !out_of_range ? "yes" : "no");
	printf("  all values right: %s\n", wrong_values ? "no" : "yes");
	show_close("hash", fd);

	/* Maps created by 4 threads at once: which thread gets which number depends on timing,
	 * but the numbers are 3, 4, 5, 6 between them. */
	for (int t = 0; t < NTHREADS; t++) {
		w[t].index = t;
		ret = pthread_create(&w[t].tid, NULL, worker_create, &w[t]);
		printf("pthread_create(creating thread %d): ret=%ld\n", t, ret);
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(w[t].tid, NULL);
		printf("  thread %d: map_create errno=%s, its map works: %s\n", t,
		       errname(w[t].own_map_errno), w[t].own_map_ok ? "yes" : "no");
		fds[t] = w[t].own_map_fd;
	}
	qsort(fds, NTHREADS, sizeof(fds[0]), cmp_int);
	printf("  fds, sorted:");
	for (int t = 0; t < NTHREADS; t++)
		printf(" %d", fds[t]);
	printf("\n");
	/* Each thread's map through the main thread. */
	for (int t = 0; t < NTHREADS; t++) {
		int k = 0, v = -1;
		ret = lookup_elem(w[t].own_map_fd, &k, &v);
		printf("  thread %d's map from the main thread: lookup errno=%s, value=%d\n", t,
		       errname(last_errno), v);
	}
	for (int t = 0; t < NTHREADS; t++)
		show_close("a thread's map, in order", fds[t]);
}

/* ---------------------------------------------------------------------------------------- */

static void show_wait(pid_t pid)
{
	int status = 0;
	pid_t r = waitpid(pid, &status, 0);
	last_errno = r < 0 ? errno : 0;
	printf("waitpid(child): ret=%s errno=%s\n", r == pid ? "child" : "other",
	       errname(last_errno));
	if (WIFEXITED(status))
		printf("  exited with %d\n", WEXITSTATUS(status));
	else
		printf("  did not exit normally (status %#x)\n", status);
}

static void section5(void)
{
	int m, p1[2], p2[2], byid;
	uint32_t child_id = 0;
	char go = 'g';
	pid_t pid;
	long ret;

	printf("== 5. fork\n");
	m = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
	show("map_create(ARRAY m)", m);
	show_update("m", m, 0, 55);

	/* The child writes through its copy, closes it, and finds it closed. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		show_update("child: m", m, 1, 66);
		show_close("child: m", m);
		show_lookup("child: closed m", m, 0);
		fflush(stdout);
		_exit(0);
	}
	show_wait(pid);
	show_lookup("m [the child closed its copy]", m, 0);
	show_lookup("m [written by the child]", m, 1);

	/* The child leaves without closing: exit closes its copy, the parent's stays. */
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		show_update("child: m", m, 2, 77);
		printf("child: _exit(0) without closing m\n");
		fflush(stdout);
		_exit(0);
	}
	show_wait(pid);
	show_lookup("m [the child exited with its copy open]", m, 2);

	/* The child makes a map of its own and exits without closing it. While the child
	 * lives, the parent finds the map by id (sent through a pipe); after waitpid it is
	 * gone. */
	ret = sys(pipe(p1));
	showf(ret, "pipe() = [%d, %d]", p1[0], p1[1]);
	ret = sys(pipe(p2));
	showf(ret, "pipe() = [%d, %d]", p2[0], p2[1]);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int own = create_map(BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0);
		uint32_t id = 0;
		show("child: map_create(ARRAY c)", own);
		show_update("child: c", own, 3, 99);
		show("child: obj_get_info_by_fd(c) [its id, sent to the parent]", map_id(own, &id));
		fflush(stdout);
		if (write(p1[1], &id, sizeof(id)) != sizeof(id) || read(p2[0], &go, 1) != 1)
			_exit(1);
		_exit(0);
	}
	ret = sys(read(p1[0], &child_id, sizeof(child_id)));
	show("read(pipe) [the child's map id]", ret);
	byid = get_fd_by_id(child_id);
	show("get_fd_by_id(c's id) [the child is alive]", byid);
	show_lookup("c by id", byid, 3);
	show_close("c by id", byid);
	ret = sys(write(p2[1], &go, 1));
	show("write(pipe) [the child may exit]", ret);
	show_wait(pid);
	show_get_fd_by_id("get_fd_by_id(c's id) [the child exited, its fd never closed]", child_id);
	show_lookup("m [after all children]", m, 0);

	show_close("pipe", p1[0]);
	show_close("pipe", p1[1]);
	show_close("pipe", p2[0]);
	show_close("pipe", p2[1]);
	show_close("m", m);
}

/* ---------------------------------------------------------------------------------------- */

/* The fdinfo lines a map's identity is in; not pos, flags, mnt_id, ino (the file), memlock
 * (the kernel's accounting) or map_id. */
static int wanted_fdinfo_line(const char *line)
{
	static const char *keys[] = { "map_type:", "key_size:", "value_size:", "max_entries:",
				      "map_flags:", "frozen:" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strncmp(line, keys[i], strlen(keys[i])) == 0)
			return 1;
	return 0;
}

/* Prints the wanted lines of a text, tabs shown as \t. */
static void print_fdinfo_text(const char *text)
{
	const char *line = text;
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (wanted_fdinfo_line(line)) {
			printf("  ");
			for (size_t i = 0; i < len; i++) {
				if (line[i] == '\t')
					printf("\\t");
				else
					putchar(line[i]);
			}
			printf("%s\n", end ? "" : " [no newline]");
		}
		line += len + (end ? 1 : 0);
	}
}

/* /proc/self/fdinfo/N read with open() and read() (in small pieces), as a C tool would. */
static void fdinfo_open_read(int fd)
{
	char path[64], text[8192];
	size_t len = 0;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = sys(open(path, O_RDONLY | O_CLOEXEC));
	showf(f, "open(/proc/self/fdinfo/%d)", fd);
	if (f < 0)
		return;
	while (len < sizeof(text) - 1 && (n = read(f, text + len, 16 < sizeof(text) - 1 - len ?
							 16 : sizeof(text) - 1 - len)) > 0)
		len += n;
	text[len] = 0;
	print_fdinfo_text(text);
	show_close("fdinfo", f);
}

/* The same with fopen() and fgets(), as bpftool does. */
static void fdinfo_fopen(int fd)
{
	char path[64], line[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	last_errno = f ? 0 : errno;
	showf(f ? 0 : -1, "fopen(/proc/self/fdinfo/%d)", fd);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		print_fdinfo_text(line);
	printf("fclose(fdinfo): ret=%d\n", fclose(f));
}

static void show_readlink(int fd)
{
	char path[64], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = sys(readlink(path, target, sizeof(target) - 1));
	showf(n, "readlink(/proc/self/fd/%d)", fd);
	if (n >= 0) {
		target[n] = 0;
		printf("  \"%s\"\n", target);
	}
}

static void section6(const char *pindir)
{
	struct statfs st;
	int h, a, d;
	long ret;

	printf("== 6. what tools read outside bpf(2)\n");
	h = create_map(BPF_MAP_TYPE_HASH, 4, 8, 16, BPF_F_NO_PREALLOC);
	show("map_create(HASH, key 4, value 8, max_entries 16, NO_PREALLOC)", h);
	a = create_map(BPF_MAP_TYPE_ARRAY, 4, 12, 3, BPF_F_RDONLY_PROG);
	show("map_create(ARRAY, key 4, value 12, max_entries 3, RDONLY_PROG)", a);
	fdinfo_open_read(h);
	fdinfo_fopen(h);
	fdinfo_fopen(a);
	/* A dup shows the same map. */
	d = sys(dup(a));
	showf(d, "dup(array fd %d)", a);
	fdinfo_open_read(d);
	/* Frozen: the flag turns to 1 in fdinfo, seen through either fd. */
	show("freeze(array)", map_freeze(a));
	fdinfo_fopen(a);
	fdinfo_open_read(d);
	show("freeze(array) [again]", map_freeze(a));
	/* A closed fd has no fdinfo. */
	show_close("dup of array", d);
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", d);
		ret = sys(open(path, O_RDONLY | O_CLOEXEC));
		showf(ret, "open(/proc/self/fdinfo/%d) [closed fd]", d);
		if (ret >= 0)
			close(ret);
	}

	show_readlink(h);
	show_readlink(a);
	ret = sys(statfs(pindir, &st));
	show("statfs(PINDIR)", ret);
	if (ret == 0)
		printf("  f_type == BPF_FS_MAGIC (0xcafe4a11): %s\n",
		       (unsigned long)st.f_type == BPF_FS_MAGIC ? "yes" : "no");
	ret = sys(statfs("/proc", &st));
	show("statfs(/proc)", ret);
	if (ret == 0)
		printf("  f_type == BPF_FS_MAGIC (0xcafe4a11): %s\n",
		       (unsigned long)st.f_type == BPF_FS_MAGIC ? "yes" : "no");
	show_close("hash", h);
	show_close("array", a);
}

/* ---------------------------------------------------------------------------------------- */

static void section7(void)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *rw, *none, *ro;
	union bpf_attr *attr;
	int arr, hash, key;
	uint64_t key8, value8;
	long ret;

	printf("== 7. bad pointers\n");
	/* Two pages: the first read-write, the second PROT_NONE; and one read-only page. */
	rw = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rw == MAP_FAILED || mprotect(rw + page, page, PROT_NONE) != 0) {
		printf("mmap/mprotect failed\n");
		return;
	}
	none = rw + page;
	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED) {
		printf("mmap failed\n");
		return;
	}

	/* The attr itself. */
	show("map_create(attr=NULL)", bpf(BPF_MAP_CREATE, NULL, sizeof(union bpf_attr)));
	show("map_create(attr=(void *)8)",
	     bpf(BPF_MAP_CREATE, (union bpf_attr *)8, sizeof(union bpf_attr)));
	show("map_create(attr in a PROT_NONE page)",
	     bpf(BPF_MAP_CREATE, (union bpf_attr *)none, sizeof(union bpf_attr)));
	/* An attr whose last 8 bytes are in the PROT_NONE page. */
	attr = (union bpf_attr *)(none - sizeof(union bpf_attr) + 8);
	memset(attr, 0, sizeof(union bpf_attr) - 8);
	attr->map_type = BPF_MAP_TYPE_ARRAY;
	attr->key_size = 4;
	attr->value_size = 4;
	attr->max_entries = 1;
	show("map_create(attr straddling into a PROT_NONE page)",
	     bpf(BPF_MAP_CREATE, attr, sizeof(union bpf_attr)));
	/* A whole attr in the read-write page, but a size reaching 16 bytes past it into the
	 * PROT_NONE page: the kernel checks those bytes are zero, and cannot read them. */
	attr = (union bpf_attr *)(none - sizeof(union bpf_attr));
	memset(attr, 0, sizeof(union bpf_attr));
	attr->map_type = BPF_MAP_TYPE_ARRAY;
	attr->key_size = 4;
	attr->value_size = 4;
	attr->max_entries = 1;
	show("map_create(attr at the end of a page, size reaching into a PROT_NONE page)",
	     bpf(BPF_MAP_CREATE, attr, sizeof(union bpf_attr) + 16));
	/* The same attr with its own size: fine (and it takes fd 3: no fd was used above). */
	ret = bpf(BPF_MAP_CREATE, attr, sizeof(union bpf_attr));
	show("map_create(the same attr, its own size)", ret);
	if (ret >= 0)
		close(ret);

	arr = create_map(BPF_MAP_TYPE_ARRAY, 4, 8, 4, 0);
	show("map_create(ARRAY, key 4, value 8, max_entries 4)", arr);
	hash = create_map(BPF_MAP_TYPE_HASH, 8, 8, 4, 0);
	show("map_create(HASH, key 8, value 8, max_entries 4)", hash);

	/* A value to read from a PROT_NONE page. */
	key = 0;
	show("update(array, key 0, value in a PROT_NONE page)",
	     update_elem(arr, &key, none, BPF_ANY));
	/* A value straddling into it. */
	show("update(array, key 0, value straddling into a PROT_NONE page)",
	     update_elem(arr, &key, none - 4, BPF_ANY));
	value8 = 0x1122334455667788ull;
	show("update(array, key 0, value 0x1122334455667788)", update_elem(arr, &key, &value8,
									     BPF_ANY));
	/* A value to write into a read-only page. */
	show("lookup(array, key 0, value in a read-only page)", lookup_elem(arr, &key, ro));
	show("lookup(array, key 0, value in a PROT_NONE page)", lookup_elem(arr, &key, none));
	printf("  read-only page still zero: %s\n", ro[0] == 0 && ro[7] == 0 ? "yes" : "no");
	/* A key straddling into a PROT_NONE page (4 bytes in, 4 out). */
	memset(none - 4, 0, 4);
	show("update(hash, key straddling into a PROT_NONE page)",
	     update_elem(hash, none - 4, &value8, BPF_ANY));
	show("lookup(hash, key straddling into a PROT_NONE page)",
	     lookup_elem(hash, none - 4, &value8));
	show("lookup(array, key straddling into a PROT_NONE page)",
	     lookup_elem(arr, none - 2, &value8));
	/* A key that fits, right at the end of the read-write page. */
	memset(none - 8, 0, 8);
	show("update(hash, key 0 at the end of a page, value 0x1122334455667788)",
	     update_elem(hash, none - 8, &value8, BPF_ANY));
	/* A miss writes nothing: ENOENT, even with a read-only value buffer. */
	key8 = 5;
	show("lookup(hash, key 5 [missing], value in a read-only page)",
	     lookup_elem(hash, &key8, ro));
	/* A hit cannot write its value there. */
	key8 = 0;
	show("lookup(hash, key 0, value in a read-only page)", lookup_elem(hash, &key8, ro));
	/* Nor the next key. */
	show("get_next_key(hash, NULL, next_key in a read-only page)",
	     get_next_key(hash, NULL, ro));
	show("get_next_key(hash, NULL, next_key straddling into a PROT_NONE page)",
	     get_next_key(hash, NULL, none - 4));
	value8 = 0;
	show("lookup(hash, key 0)", lookup_elem(hash, &key8, &value8));
	printf("  value=%#llx\n", (unsigned long long)value8);
	/* The info buffer, written by the kernel. */
	{
		union bpf_attr a;
		memset(&a, 0, sizeof(a));
		a.info.bpf_fd = arr;
		a.info.info_len = sizeof(struct bpf_map_info);
		a.info.info = ptr_to_u64(ro);
		show("obj_get_info_by_fd(array, info in a read-only page)",
		     bpf(BPF_OBJ_GET_INFO_BY_FD, &a, sizeof(a)));
	}
	show_close("array", arr);
	show_close("hash", hash);
	munmap(rw, 2 * page);
	munmap(ro, page);
	printf("still running: yes\n");
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *pindir = "/sys/fs/bpf";

	/* stdout may be a pipe or a file shared with children: line-buffer it so that nothing is
	 * held back or duplicated. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (argc == 7 && strcmp(argv[1], "--after-exec") == 0) {
		pindir = argv[6];
		section3_after(atoi(argv[2]), atoi(argv[3]), strtoul(argv[4], NULL, 10),
			       strtoul(argv[5], NULL, 10));
	} else {
		if (argc > 1)
			pindir = argv[1];
		section1();
		section2(pindir);
		section3_before(argv[0], pindir);
		return 1; /* the exec failed */
	}
	section4();
	section5();
	section6(pindir);
	section7();
	return 0;
}
