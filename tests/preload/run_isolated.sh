#!/bin/bash
# run_isolated.sh PROGRAM [ARGS...]: run `PROGRAM ARGS... /sys/fs/bpf` on the real kernel, as
# root, without touching the host's bpffs or being disturbed by what the caller left open:
#   - unshare -m --propagation private: a mount namespace of its own, so the fresh bpffs
#     mounted on /sys/fs/bpf is seen by this run only and goes away with it;
#   - every fd above 2 that the caller leaked to us is closed first, so that the first map
#     fd is 3 and the printed fd numbers are the same wherever this runs.
# PINDIR (/sys/fs/bpf) is passed as the program's last argument.
#
#   tests/preload/run_isolated.sh /tmp/seed_examples
#   tests/preload/run_isolated.sh /tmp/libbpf_client
#   tests/preload/run_isolated.sh sh tests/preload/bpftool.sh
exec unshare -m --propagation private bash -c '
	for f in /proc/$$/fd/*; do
		n=${f##*/}
		[ "$n" -gt 2 ] && eval "exec $n>&-"
	done
	mount -t bpf bpf /sys/fs/bpf || exit 1
	exec "$@" /sys/fs/bpf
' run_isolated "$@"
