/* errname.h: errno names for the programs of tests/preload, by hand so that their output
 * does not depend on the libc (ENOTSUPP, 524, is kernel-internal and has no libc name).
 * Included by each program; they are compiled one by one. */
#ifndef BPFMODEL_ERRNAME_H
#define BPFMODEL_ERRNAME_H
#include <errno.h>
#include <stdio.h>

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case E2BIG: return "E2BIG";
	case ENOTDIR: return "ENOTDIR";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case 524: return "ENOTSUPP";
	default: {
		static char buf[32];
		snprintf(buf, sizeof(buf), "errno%d", e);
		return buf;
	}
	}
}

#endif
