//! kernel/bpf/queue_stack_maps.c: BPF_MAP_TYPE_QUEUE and BPF_MAP_TYPE_STACK.
//!
//! Both are a ring of `max_entries + 1` slots with a head and a tail (one slot stays empty to
//! tell full from empty). From the syscall, UPDATE pushes (BPF_EXIST makes room by dropping
//! the oldest element), LOOKUP peeks and LOOKUP_AND_DELETE pops: the oldest element for a
//! queue, the newest for a stack. They have no keys: DELETE and GET_NEXT_KEY are EINVAL.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::hashtab::bpf_map_flags_access_ok;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr, MapType};
use std::collections::HashMap;

const FILE: &str = "kernel/bpf/queue_stack_maps.c";

/// `QUEUE_STACK_CREATE_FLAG_MASK`.
const QUEUE_STACK_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;

/// `queue_stack_map_alloc_check()`.
pub fn queue_stack_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "queue_stack_map_alloc_check";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 0 || attr.value_size == 0
            || attr.map_flags & !QUEUE_STACK_CREATE_FLAG_MASK != 0
            || !bpf_map_flags_access_ok(attr.map_flags) => Errno::EINVAL,
        "max_entries > 0, key_size == 0, value_size > 0, flags within NUMA_NODE and the access flags",
        "max_entries={} key_size={} value_size={} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.value_size, attr.map_flags);
    let kmax = ctx.profile().kmalloc_max_size;
    check!(ctx, F, attr.value_size as u64 > kmax => Errno::E2BIG,
        "value_size <= KMALLOC_MAX_SIZE", "value_size={} KMALLOC_MAX_SIZE={kmax}", attr.value_size);
    Ok(())
}

/// `queue_stack_map_alloc()`.
pub fn queue_stack_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("queue_stack_map_alloc", FILE, String::new);
    let desc = MapDesc::from_attr(attr);
    let qs = QueueStack {
        stack: attr.map_type() == MapType::STACK,
        // `qs->size` is a u32: max_entries + 1, wrapping like the kernel's.
        size: attr.max_entries.wrapping_add(1),
        head: 0,
        tail: 0,
        elements: HashMap::new(),
        struct_size: ctx.profile().sizes.bpf_queue_stack,
    };
    Ok((desc, Box::new(qs)))
}

/// `struct bpf_queue_stack`.
struct QueueStack {
    stack: bool,
    size: u32,
    head: u32,
    tail: u32,
    /// Slots that were written; the rest were never read before being written.
    elements: HashMap<u32, Box<[u8]>>,
    /// `sizeof(struct bpf_queue_stack)` of the profiled kernel.
    struct_size: u64,
}

impl QueueStack {
    fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    fn is_full(&self) -> bool {
        let mut head = self.head.wrapping_add(1);
        if head >= self.size {
            head = 0;
        }
        head == self.tail
    }

    /// `__queue_map_get` / `__stack_map_get`.
    fn get(&mut self, ctx: &mut Ctx, value: &mut [u8], delete: bool) -> Result<(), Errno> {
        let f = match (self.stack, delete) {
            (false, false) => "queue_map_peek_elem",
            (false, true) => "queue_map_pop_elem",
            (true, false) => "stack_map_peek_elem",
            (true, true) => "stack_map_pop_elem",
        };
        check!(ctx, f, self.is_empty() => Errno::ENOENT,
            "the map holds an element", "head={} tail={} empty={}", self.head, self.tail, self.is_empty());
        let index = if self.stack {
            let mut i = self.head.wrapping_sub(1);
            if i >= self.size {
                i = self.size.wrapping_sub(1);
            }
            i
        } else {
            self.tail
        };
        match self.elements.get(&index) {
            Some(v) => value.copy_from_slice(v),
            None => value.fill(0),
        }
        if delete {
            if self.stack {
                self.head = index;
            } else {
                self.tail = self.tail.wrapping_add(1);
                if self.tail >= self.size {
                    self.tail = 0;
                }
            }
        }
        Ok(())
    }
}

impl BpfMapOps for QueueStack {
    /// The syscall's LOOKUP is `map_peek_elem`.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        self.get(ctx, value, false)
    }

    /// The syscall's UPDATE is `map_push_elem` (`queue_stack_map_push_elem`).
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "queue_stack_map_push_elem";
        check!(ctx, F, flags & BPF_NOEXIST != 0 || flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, or BPF_EXIST to overwrite the oldest element when full", "flags={flags:#x}");
        if self.is_full() {
            check!(ctx, F, flags & BPF_EXIST == 0 => Errno::E2BIG,
                "room for one more element (BPF_EXIST makes room)", "full=true flags={flags:#x}");
            // Make room by dropping the oldest element.
            self.tail = self.tail.wrapping_add(1);
            if self.tail >= self.size {
                self.tail = 0;
            }
        }
        self.elements.insert(self.head, value.into());
        self.head = self.head.wrapping_add(1);
        if self.head >= self.size {
            self.head = 0;
        }
        Ok(())
    }

    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, _key: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "queue_stack_map_delete_elem",
            FILE,
            "queues and stacks have no keys to delete",
            Errno::EINVAL,
            String::new,
        ))
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: Option<&[u8]>,
        _next_key: &mut [u8],
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "queue_stack_map_get_next_key",
            FILE,
            "queues and stacks have no keys to walk",
            Errno::EINVAL,
            String::new,
        ))
    }

    /// The syscall's LOOKUP_AND_DELETE is `map_pop_elem`.
    fn map_lookup_and_delete_elem(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Option<Result<(), Errno>> {
        Some(self.get(ctx, value, true))
    }

    /// `queue_stack_map_mem_usage()`.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size + (map.max_entries as u64 + 1) * map.value_size as u64
    }
}
