#!/bin/sh
# bpftool.sh PINDIR: Debian's bpftool (7.1, libbpf 1.1 linked in) driving bpf(2) maps the way
# a user does from a shell, one bpftool process per command, the maps living on as pins under
# PINDIR (a bpffs directory, default /sys/fs/bpf).
#
# Each step prints its command line (`$ bpftool ...`), then its output (stdout and stderr
# together) and `[exit N]`. The output is deterministic; everything that is not is rewritten
# by filter() below:
#   - map ids (`458370: hash ...` in `map show`, `"id":458370` in JSON) become ID;
#   - the map names carry this shell's pid so that `map show name` on a real kernel, which
#     lists every map of that name on the whole host, finds only ours even if another copy of
#     this script runs at the same time; they are printed as testmap and testarray;
#   - PINDIR itself is printed as PINDIR.
# A hash map's order (dump, getnext) depends on a random hash seed: the hash is walked with
# getnext only while it holds one key, its plain dump is sorted, and its JSON dump is taken
# with one key. Multi-entry dumps in defined order use the array map.
#
# A failing bpftool exits with (-errno) & 0xff: 254 is ENOENT, 239 EEXIST, 249 E2BIG, 234
# EINVAL, and 255 EPERM (-1) or an error of bpftool's own.
#
# Usage: sh tests/preload/bpftool.sh [PINDIR]   (BPFTOOL=path overrides the bpftool binary)
set -u
PINDIR=${1:-/sys/fs/bpf}
BPFTOOL=${BPFTOOL:-bpftool}
NAME=testmap_$$   # at most 15 characters: BPF_OBJ_NAME_LEN is 16 with the NUL
ANAME=tarray_$$
M=$PINDIR/m
A=$PINDIR/a

# PINDIR as a sed regex (escape what is special in one).
PINDIR_RE=$(printf '%s' "$PINDIR" | sed 's/[][\.*^$|]/\\&/g')

filter() {
	sed -E \
		-e "s|$PINDIR_RE|PINDIR|g" \
		-e "s/$NAME/testmap/g" \
		-e "s/$ANAME/testarray/g" \
		-e 's/^[0-9]+: /ID: /' \
		-e 's/"id":[0-9]+/"id":ID/g'
}

# bt ARGS...: print `$ bpftool ARGS`, run it, print its output and exit status.
bt() {
	printf '$ bpftool %s\n' "$*" | filter
	out=$("$BPFTOOL" "$@" 2>&1)
	st=$?
	[ -n "$out" ] && printf '%s\n' "$out" | filter
	printf '[exit %d]\n' "$st"
}

# bt_sorted ARGS...: the same with the output lines sorted (a hash map's order is random).
bt_sorted() {
	printf '$ bpftool %s | sort\n' "$*" | filter
	out=$("$BPFTOOL" "$@" 2>&1)
	st=$?
	[ -n "$out" ] && printf '%s\n' "$out" | filter | LC_ALL=C sort
	printf '[exit %d]\n' "$st"
}

echo "== a hash map, pinned at PINDIR/m"
# Create: 4-byte keys, 8-byte values, 16 entries; bpftool pins it so later commands find it.
bt map create "$M" type hash key 4 value 8 entries 16 name "$NAME"
# Update with no flag is BPF_ANY: creates key 1.
bt map update pinned "$M" key hex 01 00 00 00 value hex 0a 00 00 00 00 00 00 00
# noexist (BPF_NOEXIST) on a key that is there: EEXIST.
bt map update pinned "$M" key hex 01 00 00 00 value hex 0b 00 00 00 00 00 00 00 noexist
# exist (BPF_EXIST) on a key that is not there: ENOENT; on key 1 it replaces the value.
bt map update pinned "$M" key hex 02 00 00 00 value hex 0c 00 00 00 00 00 00 00 exist
bt map update pinned "$M" key hex 01 00 00 00 value hex 0d 00 00 00 00 00 00 00 exist
# A 3-byte key for a 4-byte map: bpftool takes the word `value` for the fourth key byte and
# gives up before any update syscall.
bt map update pinned "$M" key hex 01 00 00 value hex 0d 00 00 00 00 00 00 00
# Lookup: a hit prints key and value, a miss says so.
bt map lookup pinned "$M" key hex 01 00 00 00
bt map lookup pinned "$M" key hex 02 00 00 00
bt -j map lookup pinned "$M" key hex 01 00 00 00
# getnext with one key in the map: no key gives key 1, key 1 is the last key, and a key that
# is not in the map gives the first key again.
bt map getnext pinned "$M"
bt map getnext pinned "$M" key hex 01 00 00 00
bt map getnext pinned "$M" key hex 07 00 00 00
# A second key (noexist creates it); the plain dump is sorted (hash order is random).
bt map update pinned "$M" key hex 02 00 00 00 value hex 0e 00 00 00 00 00 00 00 noexist
bt_sorted map dump pinned "$M"
# Delete key 2: once fine, then ENOENT. The JSON dump now has one entry.
bt map delete pinned "$M" key hex 02 00 00 00
bt map delete pinned "$M" key hex 02 00 00 00
bt -j map dump pinned "$M"
# show by pin and by name, plain and JSON (ids replaced by ID).
bt map show pinned "$M"
bt map show name "$NAME"
bt -j map show pinned "$M"
bt -j map show name "$NAME"
# Freeze: user space can no longer write (EPERM), reads still work; show says frozen.
bt map freeze pinned "$M"
bt map update pinned "$M" key hex 01 00 00 00 value hex 0f 00 00 00 00 00 00 00
bt map delete pinned "$M" key hex 01 00 00 00
bt map lookup pinned "$M" key hex 01 00 00 00
bt map show pinned "$M"
bt -j map show pinned "$M"
# A path where nothing is pinned.
bt map show pinned "$PINDIR/nothing"

echo "== an array map, pinned at PINDIR/a"
# 4 entries of 4 bytes, preallocated and zero-filled; keys are indexes 0..3.
bt map create "$A" type array key 4 value 4 entries 4 name "$ANAME"
bt map update pinned "$A" key 0 0 0 0 value 1 0 0 0
bt map update pinned "$A" key hex 02 00 00 00 value hex 2a 00 00 00
# Index 4 is past the end: E2BIG. Every index exists: noexist is EEXIST.
bt map update pinned "$A" key hex 04 00 00 00 value hex 01 00 00 00
bt map update pinned "$A" key hex 03 00 00 00 value hex 01 00 00 00 noexist
bt map lookup pinned "$A" key hex 03 00 00 00
bt map lookup pinned "$A" key hex 04 00 00 00
# getnext in index order: none gives 0, 1 gives 2, the last index ends the walk.
bt map getnext pinned "$A"
bt map getnext pinned "$A" key hex 01 00 00 00
bt map getnext pinned "$A" key hex 03 00 00 00
# Array elements cannot be deleted: EINVAL.
bt map delete pinned "$A" key hex 00 00 00 00
# Dumps in index order, plain and JSON.
bt map dump pinned "$A"
bt -j map dump pinned "$A"
bt map show pinned "$A"
bt -j map show pinned "$A"

echo "== unpinning"
# A pin is a file in the bpffs: removing it drops the map (no fd holds it).
for p in "$M" "$A"; do
	printf '$ rm %s\n' "$p" | filter
	out=$(rm "$p" 2>&1)
	st=$?
	[ -n "$out" ] && printf '%s\n' "$out" | filter
	printf '[exit %d]\n' "$st"
done
bt map show pinned "$M"
