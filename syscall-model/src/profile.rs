//! `KernelProfile`: everything that differs between the kernels the model stands in for.
//!
//! A difference between versions or architectures is a named field here, set by the
//! constructor of that version, never an `if version` at the place of the check. The checks
//! ask the profile ("does MAP_CREATE's CHECK_ATTR stop at offset 92?"), so the same code
//! serves every kernel.

use crate::uapi::{BpfCmd, MapType};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Riscv64,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Riscv64 => "riscv64",
        }
    }

    /// The architecture named `name` (`x86_64`, `riscv64`), if the model knows it.
    pub fn from_name(name: &str) -> Option<Arch> {
        [Arch::X86_64, Arch::Riscv64]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// The architecture this code was compiled for, if it is one the model knows.
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "riscv64") {
            Some(Arch::Riscv64)
        } else {
            None
        }
    }
}

/// The number of CPUs in a kernel CPU list such as `0-3,5` (the format of
/// /sys/devices/system/cpu/possible); `None` if it is not one.
pub fn parse_cpu_list(s: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?);
                n = n.checked_add(b.checked_sub(a)?.checked_add(1)?)?;
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                n = n.checked_add(1)?;
            }
        }
    }
    Some(n)
}

/// A kernel release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl KernelVersion {
    /// Parses the start of a release string such as `6.18.44-fc-v669` or `6.12.107+deb13`.
    pub fn parse_release(release: &str) -> Option<KernelVersion> {
        let mut it = release.split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }
}

/// The kernel the model imitates: its version, its machine, and each rule that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelProfile {
    pub version: KernelVersion,
    pub arch: Arch,
    /// `PAGE_SIZE`: the limit of the attr `size` argument (`bpf_check_uarg_tail_zero`).
    pub page_size: u32,
    /// `sizeof(union bpf_attr)`: bytes past it must be zero (E2BIG), and the copy stops there.
    pub attr_size: usize,
    /// `num_possible_cpus()`: the number of slots of a per-CPU value.
    pub num_possible_cpus: u32,
    /// `nr_node_ids`: a BPF_F_NUMA_NODE node must be below it (and online).
    pub nr_node_ids: u32,
    /// `KMALLOC_MAX_SIZE`: bounds key_size + value_size of a hash element.
    pub kmalloc_max_size: u64,
    /// `PCPU_MIN_UNIT_SIZE`: bounds the rounded value of a per-CPU map.
    pub pcpu_min_unit_size: u32,
    /// `sizeof(struct htab_elem)`.
    pub htab_elem_size: u32,
    /// Kernel struct sizes that show through memlock and a few limits.
    pub sizes: StructSizes,
    /// Whether `htab_map_mem_usage` still counts `HASHTAB_MAP_LOCK_COUNT` per-CPU ints
    /// (6.12 and 6.18 do; 7.2 dropped the term).
    pub htab_mem_counts_lock_counters: bool,
    /// `__MAX_BPF_CMD`: command numbers at or past it are unknown (EINVAL).
    pub nr_cmds: u32,
    /// `__MAX_BPF_MAP_TYPE`: map types at or past it are unknown (EINVAL).
    pub nr_map_types: u32,
    /// The sysctl `kernel.unprivileged_bpf_disabled`.
    pub unprivileged_bpf_disabled: u32,
    /// `RLIMIT_NOFILE` of the modelled process: fds at or past it give EMFILE.
    pub rlimit_nofile: u32,
    /// The end offset of each command's `*_LAST_FIELD` (CHECK_ATTR), indexed by command.
    last_field_end: Vec<Option<usize>>,
    /// `sizeof(struct bpf_map_info)`: what OBJ_GET_INFO_BY_FD copies at most.
    pub map_info_size: u32,
    /// Where `bpf_map_get_info_by_fd`'s tail check starts: bytes past it must be zero (E2BIG).
    /// The struct size, except in 7.2, which stops at `hash_size` (100).
    pub map_info_tail_from: u32,
    /// 6.18+: the caller's info buffer is copied in first, so fields the kernel does not fill
    /// keep the caller's bytes; before, the struct starts zeroed. Also gates `hash`.
    pub map_info_copy_in: bool,
    /// 7.2: bpf(2) takes `common_attr` and `common_size`, announced by the `BPF_COMMON_ATTRS`
    /// bit (1 << 16) in `cmd`, which `__sys_bpf` checks and then clears.
    pub common_attrs: bool,
    /// The map types that may carry a non-zero `map_extra` (`map_create`).
    pub map_extra_types: &'static [MapType],
    /// 7.2: `map_create` calls `bpf_get_file_flag` after the map is built, so BPF_F_RDONLY
    /// with BPF_F_WRONLY loses to every allocation error (6.x checks it early).
    pub file_flag_check_after_alloc: bool,
    /// PERCPU_ARRAY's `map_meta_equal` is `array_map_meta_equal`, so an inner per-CPU array
    /// must have the template's max_entries: 7.2, and the host's 6.18.44 (a stable fix: the
    /// verifier inlines the template's bound); 6.12.107 only compares type, sizes and flags.
    pub percpu_array_meta_equal_checks_max_entries: bool,
    /// HASH_OF_MAPS replaces an existing key's inner map in place (its walk position stays)
    /// and preallocates no spare elements: seen on 6.18 and 7.2; 6.12 re-inserts at the
    /// bucket head and counts the spares.
    pub htab_of_maps_in_place: bool,
    /// `kernel.perf_event_max_stack` (STACK_TRACE frames).
    pub perf_event_max_stack: u32,
    /// 7.2: BPF_F_RB_OVERWRITE, for RINGBUF only.
    pub ringbuf_overwrite: bool,
    /// LOOKUP_AND_DELETE reaches STACK_TRACE maps (seen on 6.18 and 7.2; 6.12: ENOTSUPP).
    pub lookup_and_delete_stack_trace: bool,
    /// 7.2: BPF_F_CPU and BPF_F_ALL_CPUS. `bpf_map_check_op_flags` then checks element flags
    /// after the fd lookup (6.x rejects lookup flags before it), per-CPU updates accept flags
    /// up to F_ALL_CPUS, and only `value_size` bytes of each CPU's slot are stored.
    pub percpu_cpu_flags: bool,
    /// The BPF LSM was initialized at boot (CONFIG_BPF_LSM and `bpf` in the LSM list), without
    /// which `inode_storage_map_alloc` refuses INODE_STORAGE maps (EOPNOTSUPP). True on every
    /// profiled kernel: the host's 6.18.44 lists it in /sys/kernel/security/lsm, and both
    /// riscv64 configs have CONFIG_BPF_LSM=y with `bpf` in CONFIG_LSM (the guests boot with no
    /// `lsm=`).
    pub bpf_lsm_initialized: bool,
    /// `CONFIG_NR_CPUS`: CPUMAP's limit on max_entries (E2BIG past it). Read from each
    /// kernel's config: 256 on the host's x86_64 6.18.44 and Debian's riscv64 7.2.11, 128 on
    /// Debian's riscv64 6.12.107; the other arch of each version is assumed alike.
    pub nr_cpus: u32,
    /// 7.2: `cpu_map_update_elem` returns the error that stopped `__cpu_map_entry_alloc` (a
    /// program fd that is not open is EBADF, a file that is not a program EINVAL); 6.12 and
    /// 6.18 turn every failure into ENOMEM (seen on the host's 6.18.44).
    pub cpumap_update_returns_alloc_errno: bool,
    /// The struct_ops value types of the kernel's vmlinux BTF that `bpf_struct_ops_find_value`
    /// knows, by BTF name and size (`sizeof(struct bpf_struct_ops_<name>)`, the only accepted
    /// value_size). Only the two the corpus uses are listed; read from each kernel's BTF, and
    /// both exist with these sizes in all three (7.2 adds sched_ext_ops, Qdisc_ops and others).
    pub struct_ops_value_types: &'static [(&'static str, u32)],
    /// 7.2: `arena_map_alloc` first asks `bpf_jit_supports_arena()` (EOPNOTSUPP without it).
    pub arena_checks_jit: bool,
    /// `bpf_jit_supports_arena()` of the architecture's JIT: true for x86_64 (its JIT has
    /// arena support; not seen, as only 7.2 asks); false for riscv64 (7.2.11 refuses arenas
    /// with EOPNOTSUPP; 6.12 does not ask and creates them).
    pub jit_supports_arena: bool,
    /// The host's 6.18.44 build refuses every ARENA map with EPERM, after the privilege
    /// checks (a bad token fd or an offload ifindex still fail first) and before any attr
    /// rule of `arena_map_alloc`. Observed, not explained by upstream source: neither 6.12 nor
    /// 7.2 has such a check, and the caller has CAP_BPF and CAP_SYS_ADMIN.
    pub arena_refused_eperm: bool,
    /// fdinfo's `memlock` line. false: the map type's own `map_mem_usage` (6.12 on). true:
    /// 6.1's single estimate for every type, `bpf_map_memory_footprint` in syscall.c:
    /// `max_entries` slots of `round_up(key_size + bpf_map_value_size, 8)` bytes, rounded up
    /// to whole pages (so 4096 for a small array, 0 for a map without entries); seen on
    /// 6.1.176.
    pub fdinfo_memlock_is_footprint: bool,
    /// `bpf_common_lru_populate()` sizes a CPU's harvest of free nodes from the common LRU
    /// (`lru->target_free`) as clamp(nr_elems / num_possible_cpus / 2, 1, LOCAL_FREE_TARGET).
    /// 6.1 has no `target_free` and always uses LOCAL_FREE_TARGET (128): a CPU takes up to 128
    /// free nodes at once and, when the common list has fewer, shrinks (evicts) for the rest,
    /// which empties a small full map (seen on 6.1.176).
    pub lru_target_free_scales: bool,
    /// 6.1 (seen on 6.1.176): `__sys_bpf` itself refuses BPF_MAP_CREATE and BPF_PROG_LOAD with
    /// EPERM to a caller without CAP_BPF while `kernel.unprivileged_bpf_disabled` is set,
    /// before the attr is even copied (so before its size and CHECK_ATTR rules); 6.12 and
    /// later ask in `map_create`, after the type's alloc_check.
    pub unpriv_disabled_checked_in_sys_bpf: bool,
    /// BPF tokens: `map_create` takes BPF_F_TOKEN_FD (bit 16) off the flags and opens
    /// `map_token_fd`. 6.1 has no tokens (seen on 6.1.176): bit 16 is no flag, so every type's
    /// flag mask refuses it (EINVAL), and `map_token_fd` lies past MAP_CREATE's last field.
    pub bpf_token: bool,
    /// BPF_F_PATH_FD for OBJ_PIN and OBJ_GET (a relative pathname starts at `path_fd`). 6.1 has
    /// neither the flag nor the field (seen on 6.1.176): a pin's file_flags must be 0 and a
    /// get's within RDONLY and WRONLY, else EINVAL.
    pub obj_path_fd: bool,
    /// 6.1 (seen on 6.1.176): `map_freeze` does not look at the fd's access mode (a read-only
    /// fd freezes, and a second freeze is EBUSY); after its EBUSY checks it wants
    /// `bpf_capable()` (EPERM). 6.12 and later check write access first (EPERM) and ask for no
    /// capability.
    pub freeze_needs_bpf_capable: bool,
    /// The map_flags `bpf_struct_ops_map_alloc_check` accepts: BPF_F_LINK and
    /// BPF_F_VTYPE_BTF_OBJ_FD on 6.12 and later; none on 6.1 (seen on 6.1.176: LINK is EINVAL).
    pub struct_ops_map_flags: u32,
    /// 6.1's `map_create` still calls `find_and_alloc_map()`, which bounds the map type, finds
    /// its ops and runs `map_alloc_check` and `map_alloc`; later kernels do the same steps
    /// inline in `map_create`. The checks and their order are the same: only the function the
    /// steps name differs.
    pub find_and_alloc_map: bool,
    /// The modelled machine's memory, in bytes. The model stores only what is written, but a
    /// map whose preallocated structures (its `map_mem_usage`, what the kernel gets from
    /// `bpf_map_area_alloc` and friends at creation) exceed this fails to allocate with
    /// ENOMEM, as the kernel's would; below it every allocation succeeds (the model has no
    /// memory pressure, so near the limit a real kernel may still say ENOMEM where the model
    /// does not). 1 GiB, the QEMU guests' `-m 1024`; the host's profile takes MemTotal.
    pub mem_total: u64,
}

impl KernelProfile {
    /// Linux 6.18 as the host runs it (checked against 6.18.44, x86_64).
    pub fn linux_6_18(arch: Arch, num_possible_cpus: u32) -> KernelProfile {
        KernelProfile {
            version: KernelVersion {
                major: 6,
                minor: 18,
            },
            arch,
            page_size: 4096,
            attr_size: 168,
            num_possible_cpus,
            nr_node_ids: 1,
            kmalloc_max_size: 1 << 22,
            pcpu_min_unit_size: 32 << 10,
            htab_elem_size: 48,
            sizes: StructSizes::of(
                KernelVersion {
                    major: 6,
                    minor: 18,
                },
                arch,
            ),
            htab_mem_counts_lock_counters: true,
            nr_cmds: 38,
            nr_map_types: 34,
            unprivileged_bpf_disabled: 2,
            rlimit_nofile: 1024,
            last_field_end: last_fields(&[(BpfCmd::MAP_CREATE, 92)]),
            map_info_size: 104,
            map_info_tail_from: 104,
            map_info_copy_in: true,
            common_attrs: false,
            map_extra_types: &[MapType::BLOOM_FILTER, MapType::ARENA],
            file_flag_check_after_alloc: false,
            percpu_array_meta_equal_checks_max_entries: true,
            htab_of_maps_in_place: true,
            perf_event_max_stack: 127,
            ringbuf_overwrite: false,
            lookup_and_delete_stack_trace: true,
            percpu_cpu_flags: false,
            bpf_lsm_initialized: true,
            nr_cpus: 256,
            cpumap_update_returns_alloc_errno: false,
            struct_ops_value_types: STRUCT_OPS_VALUE_TYPES,
            arena_checks_jit: false,
            jit_supports_arena: arch == Arch::X86_64,
            arena_refused_eperm: true,
            fdinfo_memlock_is_footprint: false,
            lru_target_free_scales: true,
            unpriv_disabled_checked_in_sys_bpf: false,
            bpf_token: true,
            obj_path_fd: true,
            freeze_needs_bpf_capable: false,
            struct_ops_map_flags: crate::uapi::map_flags::BPF_F_LINK
                | crate::uapi::map_flags::BPF_F_VTYPE_BTF_OBJ_FD,
            find_and_alloc_map: false,
            mem_total: 1 << 30,
        }
    }

    /// Linux 6.12 (Debian trixie's 6.12.107): a smaller union (152 bytes, no program signing
    /// and no exclusive maps), so MAP_CREATE ends at `map_token_fd`.
    /// Linux 6.1 (bookworm's x86_64 6.1.176, booted in QEMU): a smaller attr (no tokens,
    /// no path_fd), 32 map types (no CGRP_STORAGE or ARENA), and only BLOOM_FILTER taking
    /// map_extra.
    pub fn linux_6_1(arch: Arch, num_possible_cpus: u32) -> KernelProfile {
        KernelProfile {
            version: KernelVersion { major: 6, minor: 1 },
            attr_size: 144,
            nr_cmds: 36,
            nr_map_types: 32,
            map_extra_types: &[MapType::BLOOM_FILTER],
            last_field_end: last_fields(&[
                (BpfCmd::MAP_CREATE, 72),
                (BpfCmd::OBJ_PIN, 16),
                (BpfCmd::OBJ_GET, 16),
            ]),
            sizes: StructSizes::of(KernelVersion { major: 6, minor: 1 }, arch),
            // Debian's amd64 config.
            nr_cpus: 8192,
            fdinfo_memlock_is_footprint: true,
            lru_target_free_scales: false,
            unpriv_disabled_checked_in_sys_bpf: true,
            bpf_token: false,
            obj_path_fd: false,
            freeze_needs_bpf_capable: true,
            struct_ops_map_flags: 0,
            find_and_alloc_map: true,
            mem_total: 1 << 30,
            ..KernelProfile::linux_6_12(arch, num_possible_cpus)
        }
    }

    pub fn linux_6_12(arch: Arch, num_possible_cpus: u32) -> KernelProfile {
        KernelProfile {
            version: KernelVersion {
                major: 6,
                minor: 12,
            },
            attr_size: 152,
            nr_cmds: 37,
            percpu_array_meta_equal_checks_max_entries: false,
            lookup_and_delete_stack_trace: false,
            htab_of_maps_in_place: false,
            sizes: StructSizes::of(
                KernelVersion {
                    major: 6,
                    minor: 12,
                },
                arch,
            ),
            map_info_size: 88,
            map_info_tail_from: 88,
            map_info_copy_in: false,
            last_field_end: last_fields(&[(BpfCmd::MAP_CREATE, 80)]),
            bpf_lsm_initialized: true,
            nr_cpus: 128,
            cpumap_update_returns_alloc_errno: false,
            arena_refused_eperm: false,
            ..KernelProfile::linux_6_18(arch, num_possible_cpus)
        }
    }

    /// Linux 7.2 (Debian trixie-backports' 7.2.11): common attrs, BPF_F_CPU/BPF_F_ALL_CPUS,
    /// the late file-flag check, RHASH and INSN_ARRAY.
    pub fn linux_7_2(arch: Arch, num_possible_cpus: u32) -> KernelProfile {
        KernelProfile {
            version: KernelVersion { major: 7, minor: 2 },
            nr_cmds: 39,
            nr_map_types: 36,
            sizes: StructSizes::of(KernelVersion { major: 7, minor: 2 }, arch),
            map_info_tail_from: 100,
            htab_mem_counts_lock_counters: false,
            common_attrs: true,
            map_extra_types: &[MapType::BLOOM_FILTER, MapType::ARENA, MapType::RHASH],
            file_flag_check_after_alloc: true,
            percpu_array_meta_equal_checks_max_entries: true,
            htab_of_maps_in_place: true,
            ringbuf_overwrite: true,
            lookup_and_delete_stack_trace: true,
            percpu_cpu_flags: true,
            bpf_lsm_initialized: true,
            nr_cpus: 256,
            cpumap_update_returns_alloc_errno: true,
            arena_checks_jit: true,
            arena_refused_eperm: false,
            ..KernelProfile::linux_6_18(arch, num_possible_cpus)
        }
    }

    /// Every profile the model has, newest first.
    pub fn all(arch: Arch, num_possible_cpus: u32) -> Vec<KernelProfile> {
        vec![
            KernelProfile::linux_7_2(arch, num_possible_cpus),
            KernelProfile::linux_6_18(arch, num_possible_cpus),
            KernelProfile::linux_6_12(arch, num_possible_cpus),
            KernelProfile::linux_6_1(arch, num_possible_cpus),
        ]
    }

    /// The profile for a running kernel's release string; `None` if no profile covers it.
    pub fn for_release(release: &str, arch: Arch, num_possible_cpus: u32) -> Option<KernelProfile> {
        let v = KernelVersion::parse_release(release)?;
        KernelProfile::for_version(v, arch, num_possible_cpus)
    }

    /// The profile of exactly this version, if there is one.
    pub fn for_version(
        v: KernelVersion,
        arch: Arch,
        num_possible_cpus: u32,
    ) -> Option<KernelProfile> {
        KernelProfile::all(arch, num_possible_cpus)
            .into_iter()
            .find(|p| p.version == v)
    }

    /// The profile to use for a kernel of version `v`: its own, or else the nearest lower
    /// one (a kernel keeps the rules of the last release the model knows until it learns the
    /// new ones), or else, for a kernel older than every profile, the oldest. The flag says
    /// whether the profile is the kernel's own.
    pub fn nearest(v: KernelVersion, arch: Arch, num_possible_cpus: u32) -> (KernelProfile, bool) {
        let all = KernelProfile::all(arch, num_possible_cpus);
        let own = all.iter().position(|p| p.version == v);
        let lower = all
            .iter()
            .enumerate()
            .filter(|(_, p)| p.version <= v)
            .max_by_key(|(_, p)| p.version)
            .map(|(i, _)| i);
        let oldest = all
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.version)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let i = own.or(lower).unwrap_or(oldest);
        (all[i].clone(), own.is_some())
    }

    /// A short label: `linux-6.18/x86_64/2cpu`.
    pub fn label(&self) -> String {
        format!(
            "linux-{}/{}/{}cpu",
            self.version,
            self.arch.name(),
            self.num_possible_cpus
        )
    }

    /// The end offset of `cmd`'s last attr field, if the kernel knows the command.
    pub fn last_field_end(&self, cmd: BpfCmd) -> Option<usize> {
        self.last_field_end.get(cmd.0 as usize).copied().flatten()
    }

    /// Whether `cmd` is a command number this kernel dispatches (`__sys_bpf`'s switch).
    pub fn knows_cmd(&self, cmd: BpfCmd) -> bool {
        cmd.0 < self.nr_cmds
    }
}

/// `bpf_struct_ops_bpf_dummy_ops` and `bpf_struct_ops_tcp_congestion_ops`: the same sizes in
/// the BTF of the host's 6.18.44 x86_64 and of the riscv64 6.12.107 and 7.2.11 images.
const STRUCT_OPS_VALUE_TYPES: &[(&str, u32)] = &[
    ("bpf_struct_ops_bpf_dummy_ops", 128),
    ("bpf_struct_ops_tcp_congestion_ops", 256),
];

/// Sizes of kernel structs that user space can see through `memlock` in fdinfo (and, for the
/// LPM node, through a value-size limit). They depend on the version, the architecture and the
/// config; each set here was read off the kernel it names (memlock of known maps, solved for the
/// struct), and is noted where it is only assumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructSizes {
    pub bpf_array: u64,
    pub bpf_htab: u64,
    pub bpf_queue_stack: u64,
    pub bpf_bloom_filter: u64,
    /// `struct lpm_trie_node`: 6.1 and 6.12 still have an `rcu_head` in it (40 bytes); later 24.
    pub lpm_trie_node: u64,
    pub bpf_ringbuf_map: u64,
    /// `RINGBUF_NR_META_PAGES`: the pages before a ring buffer's data.
    pub ringbuf_meta_pages: u64,
    pub bpf_stack_map: u64,
    pub stack_map_bucket: u64,
    /// `struct bpf_cgroup_storage_map`: a `struct bpf_map`, a spinlock, an rb_root and a list.
    pub bpf_cgroup_storage_map: u64,
    /// `struct bpf_local_storage_elem` (its data is cacheline-aligned: 128 with 64-byte lines);
    /// `BPF_LOCAL_STORAGE_MAX_VALUE_SIZE` is `U16_MAX` less this.
    pub bpf_local_storage_elem: u64,
    /// `struct bpf_dtab` (DEVMAP and DEVMAP_HASH).
    pub bpf_dtab: u64,
    /// `struct bpf_dtab_netdev`: one devmap element.
    pub bpf_dtab_netdev: u64,
    /// `struct bpf_cpu_map`.
    pub bpf_cpu_map: u64,
    /// `struct bpf_map`: the whole of `struct reuseport_array` before its slots, and the head
    /// of the sockmap, sockhash and XSKMAP structs (`bpf_array` is it plus 16 bytes).
    pub bpf_map: u64,
    /// `struct bpf_rhtab` (7.2's RHASH): 536 on riscv64 7.2.11 (measured); x86_64 assumed
    /// to differ from riscv64 as `bpf_array` does. 0 where the kernel has no RHASH.
    pub bpf_rhtab: u64,
}

impl StructSizes {
    pub fn of(version: KernelVersion, arch: Arch) -> StructSizes {
        let v = (version.major, version.minor);
        match (arch, v) {
            // Debian's riscv64 6.12.107 (measured in QEMU).
            (Arch::Riscv64, (6, 12)) => StructSizes {
                bpf_array: 264,
                bpf_htab: 896,
                bpf_queue_stack: 264,
                bpf_bloom_filter: 264,
                lpm_trie_node: 40,
                bpf_ringbuf_map: 256,
                ringbuf_meta_pages: 3,
                bpf_stack_map: 288,
                stack_map_bucket: 16,
                bpf_cgroup_storage_map: 280,
                bpf_local_storage_elem: 128,
                bpf_dtab: 296,
                bpf_dtab_netdev: 64,
                bpf_cpu_map: 256,
                bpf_map: 248,
                bpf_rhtab: 0,
            },
            // Debian's riscv64 7.2.11 (measured in QEMU); 6.18 on riscv64 is assumed alike.
            (Arch::Riscv64, _) => StructSizes {
                bpf_array: 304,
                bpf_htab: 896,
                bpf_queue_stack: 304,
                bpf_bloom_filter: 304,
                lpm_trie_node: 24,
                bpf_ringbuf_map: 296,
                ringbuf_meta_pages: 3,
                bpf_stack_map: 328,
                stack_map_bucket: 16,
                bpf_cgroup_storage_map: 320,
                bpf_local_storage_elem: 128,
                bpf_dtab: 336,
                bpf_dtab_netdev: 64,
                bpf_cpu_map: 296,
                bpf_map: 288,
                bpf_rhtab: 536,
            },
            // The host's x86_64 6.18.44 (measured, and read from its BTF); the x86_64 6.12 and
            // 7.2 sizes are assumed alike except for the 6.1 and 6.12 LPM node.
            (Arch::X86_64, v) => StructSizes {
                bpf_array: 312,
                bpf_htab: 832,
                bpf_queue_stack: 312,
                bpf_bloom_filter: 312,
                lpm_trie_node: if v <= (6, 12) { 40 } else { 24 },
                bpf_ringbuf_map: 304,
                ringbuf_meta_pages: 3,
                bpf_stack_map: 320,
                stack_map_bucket: 16,
                bpf_cgroup_storage_map: 328,
                bpf_local_storage_elem: 128,
                bpf_dtab: 344,
                bpf_dtab_netdev: 64,
                bpf_cpu_map: 304,
                bpf_map: 296,
                bpf_rhtab: 544,
            },
        }
    }
}

/// `BPF_*_LAST_FIELD` end offsets (`offsetofend(union bpf_attr, <last field>)`), with the
/// given overrides for the commands whose last field moved.
fn last_fields(overrides: &[(BpfCmd, usize)]) -> Vec<Option<usize>> {
    let mut last = vec![None; 40];
    for (cmd, end) in LAST_FIELDS.iter().chain(overrides) {
        last[cmd.0 as usize] = Some(*end);
    }
    last
}

/// The last fields every profiled version shares.
const LAST_FIELDS: &[(BpfCmd, usize)] = &[
    (BpfCmd::MAP_LOOKUP_ELEM, 32),            // flags
    (BpfCmd::MAP_UPDATE_ELEM, 32),            // flags
    (BpfCmd::MAP_DELETE_ELEM, 16),            // key
    (BpfCmd::MAP_GET_NEXT_KEY, 24),           // next_key
    (BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM, 32), // flags
    (BpfCmd::MAP_FREEZE, 4),                  // map_fd
    (BpfCmd::PROG_GET_NEXT_ID, 8),            // next_id
    (BpfCmd::MAP_GET_NEXT_ID, 8),             // next_id
    (BpfCmd::BTF_GET_NEXT_ID, 8),             // next_id
    (BpfCmd::LINK_GET_NEXT_ID, 8),            // next_id
    (BpfCmd::MAP_GET_FD_BY_ID, 12),           // open_flags
    (BpfCmd::OBJ_GET_INFO_BY_FD, 16),         // info.info
    (BpfCmd::OBJ_PIN, 20),                    // path_fd
    (BpfCmd::MAP_LOOKUP_BATCH, 56),           // batch.flags
    (BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH, 56),
    (BpfCmd::MAP_UPDATE_BATCH, 56),
    (BpfCmd::MAP_DELETE_BATCH, 56),
    (BpfCmd::OBJ_GET, 20), // path_fd
];

#[cfg(test)]
mod tests {
    use super::*;

    fn v(major: u32, minor: u32) -> KernelVersion {
        KernelVersion { major, minor }
    }

    #[test]
    fn an_unknown_version_takes_the_nearest_lower_profile() {
        let (p, own) = KernelProfile::nearest(v(6, 15), Arch::X86_64, 2);
        assert_eq!((p.version, own), (v(6, 12), false));
        let (p, own) = KernelProfile::nearest(v(7, 9), Arch::X86_64, 2);
        assert_eq!((p.version, own), (v(7, 2), false));
        let (p, own) = KernelProfile::nearest(v(6, 18), Arch::X86_64, 2);
        assert_eq!((p.version, own), (v(6, 18), true));
    }

    #[test]
    fn a_version_older_than_every_profile_takes_the_oldest() {
        let oldest = KernelProfile::all(Arch::Riscv64, 2)
            .into_iter()
            .map(|p| p.version)
            .min()
            .unwrap();
        let (p, own) = KernelProfile::nearest(v(4, 19), Arch::Riscv64, 2);
        assert_eq!((p.version, own), (oldest, false));
    }

    #[test]
    fn release_strings_parse() {
        assert_eq!(
            KernelVersion::parse_release("6.18.44-fc-v669"),
            Some(KernelVersion {
                major: 6,
                minor: 18
            })
        );
        assert_eq!(
            KernelVersion::parse_release("6.12.107+deb13-riscv64"),
            Some(KernelVersion {
                major: 6,
                minor: 12
            })
        );
        assert_eq!(KernelVersion::parse_release("garbage"), None);
    }
}
