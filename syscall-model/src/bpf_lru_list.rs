//! kernel/bpf/bpf_lru_list.c: the LRU behind BPF_MAP_TYPE_LRU_HASH and LRU_PERCPU_HASH.
//!
//! Every preallocated element has an LRU node. A node in use sits on an ordered list: the
//! active and inactive lists of an LRU list, or (common LRU only) the pending list of the CPU
//! that took it. Which element a full map evicts follows from those orders, so the model keeps
//! them exactly, as doubly linked lists with the kernel's head and tail.
//!
//! Free nodes carry nothing: a node taken from a free list gets its hash, CPU and list anew, so
//! which free node is taken is invisible from user space. The model therefore keeps free lists
//! as counts, and gives a node an id only while it is in use. (This also hides the one
//! difference between 6.12 and 7.2 here: 7.2 moves a CPU's harvest of free nodes through an
//! llist, which reverses their order.)
//!
//! 6.1 has no `target_free`: a CPU always harvests (and, when the common list runs short,
//! evicts) LOCAL_FREE_TARGET nodes at once (the profile's `lru_target_free_scales`).
//!
//! 7.2's `pending_free` marks a node whose lock could not be taken; a syscall never contends
//! with itself, so it is always clear here.

use crate::map::{prealloc_entries, prealloc_reserve};

/// `LOCAL_FREE_TARGET`: the most free nodes a CPU harvests from the common list at once.
const LOCAL_FREE_TARGET: u32 = 128;
/// `LOCAL_NR_SCANS`.
const LOCAL_NR_SCANS: u32 = LOCAL_FREE_TARGET;
/// `PERCPU_FREE_TARGET`: nodes a per-CPU list frees when it runs dry.
const PERCPU_FREE_TARGET: u32 = 4;
/// `PERCPU_NR_SCANS`.
const PERCPU_NR_SCANS: u32 = PERCPU_FREE_TARGET;

/// `enum bpf_lru_list_type`, for nodes in use and free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LruListType {
    Active,
    Inactive,
    Free,
    LocalFree,
    LocalPending,
}

impl LruListType {
    /// `counts[]` covers the active and inactive lists only (`NR_BPF_LRU_LIST_COUNT`).
    fn counted(self) -> Option<usize> {
        match self {
            LruListType::Active => Some(0),
            LruListType::Inactive => Some(1),
            _ => None,
        }
    }
}

/// `struct bpf_lru_node`.
#[derive(Clone, Copy, Debug)]
struct Node {
    cpu: u32,
    ty: LruListType,
    referenced: bool,
    /// The element's hash, written by the pop (`hash_offset`), so the owner can find it.
    hash: u32,
}

/// `struct list_head` links. Ids below `heads` are list heads; the rest are nodes.
#[derive(Default)]
struct Links {
    next: Vec<u32>,
    prev: Vec<u32>,
}

impl Links {
    fn new_slot(&mut self) -> u32 {
        let id = self.next.len() as u32;
        self.next.push(id);
        self.prev.push(id);
        id
    }

    /// `list_add()`: right after `head`.
    fn add(&mut self, n: u32, head: u32) {
        let nx = self.next[head as usize];
        self.next[n as usize] = nx;
        self.prev[n as usize] = head;
        self.prev[nx as usize] = n;
        self.next[head as usize] = n;
    }

    /// `list_del()` (the entry is left pointing at itself).
    fn del(&mut self, n: u32) {
        let (p, nx) = (self.prev[n as usize], self.next[n as usize]);
        self.next[p as usize] = nx;
        self.prev[nx as usize] = p;
        self.next[n as usize] = n;
        self.prev[n as usize] = n;
    }

    /// `list_move()`: to the head of another (or the same) list.
    fn move_to(&mut self, n: u32, head: u32) {
        self.del(n);
        self.add(n, head);
    }

    fn is_empty(&self, head: u32) -> bool {
        self.next[head as usize] == head
    }

    fn next(&self, n: u32) -> u32 {
        self.next[n as usize]
    }

    fn prev(&self, n: u32) -> u32 {
        self.prev[n as usize]
    }
}

/// `struct bpf_lru_list`: active and inactive lists (heads), the free count, and the
/// inactive rotation cursor.
struct LruList {
    active: u32,
    inactive: u32,
    free: u64,
    counts: [u32; 2],
    next_inactive_rotation: u32,
}

/// `struct bpf_lru_locallist`.
struct LocalList {
    pending: u32,
    free: u64,
    next_steal: u32,
}

/// Where a shrink puts the nodes it frees.
#[derive(Clone, Copy)]
enum FreeTo {
    /// The free list of the LRU list being shrunk (per-CPU LRU).
    OwnList,
    /// A CPU's local free list (common LRU).
    Local(usize),
}

/// `struct bpf_lru`.
pub struct BpfLru {
    percpu: bool,
    /// One list for the common LRU, one per possible CPU with BPF_F_NO_COMMON_LRU.
    lists: Vec<LruList>,
    /// Common LRU: each CPU's local lists.
    local: Vec<LocalList>,
    links: Links,
    /// Node state by id; `None` for an id that is free for reuse.
    nodes: Vec<Option<Node>>,
    /// Node ids (link slots) that no node in use holds.
    spare_ids: Vec<u32>,
    /// The nodes to make room for when the first is taken ([`prealloc_entries`]; 0 once
    /// done): the kernel allocates them all with the map.
    reserve: usize,
    target_free: u32,
    nr_scans: u32,
    ncpus: u32,
}

/// `lru->del_from_htab`: unlink the element of a node (id, hash) from the table; false if it
/// is not there.
pub type DelFromHtab<'a> = &'a mut dyn FnMut(u32, u32) -> bool;

impl BpfLru {
    /// `bpf_lru_init()` and `bpf_lru_populate()` for `nr_elems` preallocated elements.
    /// `target_free_scales`: the profile's `lru_target_free_scales` (false on 6.1, where a CPU
    /// always harvests LOCAL_FREE_TARGET nodes).
    pub fn new(percpu: bool, nr_elems: u32, ncpus: u32, target_free_scales: bool) -> BpfLru {
        let mut links = Links::default();
        let list = |links: &mut Links, free: u64| {
            let active = links.new_slot();
            let inactive = links.new_slot();
            LruList {
                active,
                inactive,
                free,
                counts: [0, 0],
                // `bpf_lru_list_init()`: the cursor starts at the inactive head.
                next_inactive_rotation: inactive,
            }
        };
        let ncpus = ncpus.max(1);
        let (lists, local, target_free, nr_scans) = if percpu {
            // `bpf_percpu_lru_populate()`: each CPU's list gets nr_elems / ncpus nodes (the map
            // rounded max_entries to a multiple of the CPUs).
            let per = (nr_elems / ncpus) as u64;
            let lists = (0..ncpus).map(|_| list(&mut links, per)).collect();
            (lists, Vec::new(), 0, PERCPU_NR_SCANS)
        } else {
            let global = list(&mut links, nr_elems as u64);
            let local = (0..ncpus)
                .map(|cpu| LocalList {
                    pending: links.new_slot(),
                    free: 0,
                    // `bpf_lru_locallist_init()`: a CPU steals from itself first.
                    next_steal: cpu,
                })
                .collect();
            // `bpf_common_lru_populate()` (6.1: no target_free, LOCAL_FREE_TARGET throughout).
            let target = if target_free_scales {
                ((nr_elems / ncpus) / 2).clamp(1, LOCAL_FREE_TARGET)
            } else {
                LOCAL_FREE_TARGET
            };
            (vec![global], local, target, LOCAL_NR_SCANS)
        };
        BpfLru {
            percpu,
            lists,
            local,
            links,
            nodes: Vec::new(),
            spare_ids: Vec::new(),
            reserve: prealloc_entries(nr_elems as usize),
            target_free,
            nr_scans,
            ncpus,
        }
    }

    /// The kernel allocates every node with the map (`bpf_lru_populate`); the model makes
    /// the room for them when the first is taken (a map that fails its creation, or stays
    /// empty, costs nothing), so taking nodes never regrows the lists.
    fn make_room(&mut self) {
        let n = std::mem::take(&mut self.reserve);
        prealloc_reserve(&mut self.nodes, self.links.next.len() + n);
        prealloc_reserve(&mut self.links.next, n);
        prealloc_reserve(&mut self.links.prev, n);
    }

    fn node(&self, id: u32) -> &Node {
        self.nodes[id as usize]
            .as_ref()
            .expect("an LRU node id in use")
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        self.nodes[id as usize]
            .as_mut()
            .expect("an LRU node id in use")
    }

    /// A free node leaves its free list: it gets an id (a link slot) while in use.
    fn take_free_node(&mut self, cpu: u32, ty: LruListType) -> u32 {
        let id = match self.spare_ids.pop() {
            Some(id) => id,
            None => {
                if self.reserve > 0 {
                    self.make_room();
                }
                let id = self.links.new_slot();
                if self.nodes.len() <= id as usize {
                    self.nodes.resize(id as usize + 1, None);
                }
                id
            }
        };
        self.nodes[id as usize] = Some(Node {
            cpu,
            ty,
            referenced: false,
            hash: 0,
        });
        id
    }

    /// A node joins a free list: it is off every ordered list and its id is spare.
    fn release_node(&mut self, id: u32) {
        self.links.del(id);
        self.nodes[id as usize] = None;
        self.spare_ids.push(id);
    }

    fn head_of(&self, l: usize, ty: LruListType) -> u32 {
        match ty {
            LruListType::Active => self.lists[l].active,
            LruListType::Inactive => self.lists[l].inactive,
            _ => unreachable!("only the active and inactive lists are ordered"),
        }
    }

    fn count_inc(&mut self, l: usize, ty: LruListType) {
        if let Some(i) = ty.counted() {
            self.lists[l].counts[i] += 1;
        }
    }

    fn count_dec(&mut self, l: usize, ty: LruListType) {
        if let Some(i) = ty.counted() {
            self.lists[l].counts[i] -= 1;
        }
    }

    /// `bpf_lru_node_set_ref()`.
    pub fn set_ref(&mut self, id: u32) {
        self.node_mut(id).referenced = true;
    }

    /// `__bpf_lru_node_move_to_free()`: out of an LRU list into a free list.
    fn move_to_free(&mut self, l: usize, id: u32, to: FreeTo) {
        if self.lists[l].next_inactive_rotation == id {
            self.lists[l].next_inactive_rotation = self.links.prev(id);
        }
        let ty = self.node(id).ty;
        self.count_dec(l, ty);
        self.release_node(id);
        match to {
            FreeTo::OwnList => self.lists[l].free += 1,
            FreeTo::Local(cpu) => self.local[cpu].free += 1,
        }
    }

    /// `__bpf_lru_node_move_in()`: from a CPU's pending list into the LRU list.
    fn move_in(&mut self, l: usize, id: u32, tgt: LruListType) {
        self.count_inc(l, tgt);
        let n = self.node_mut(id);
        n.ty = tgt;
        n.referenced = false;
        let head = self.head_of(l, tgt);
        self.links.move_to(id, head);
    }

    /// `__bpf_lru_node_move()`: within or between the active and inactive lists, to the head,
    /// ref bit cleared.
    fn move_node(&mut self, l: usize, id: u32, tgt: LruListType) {
        let ty = self.node(id).ty;
        if ty != tgt {
            self.count_dec(l, ty);
            self.count_inc(l, tgt);
            self.node_mut(id).ty = tgt;
        }
        self.node_mut(id).referenced = false;
        if self.lists[l].next_inactive_rotation == id {
            self.lists[l].next_inactive_rotation = self.links.prev(id);
        }
        let head = self.head_of(l, tgt);
        self.links.move_to(id, head);
    }

    /// `bpf_lru_list_inactive_low()`.
    fn inactive_low(&self, l: usize) -> bool {
        self.lists[l].counts[1] < self.lists[l].counts[0]
    }

    /// `__bpf_lru_list_rotate_active()`: from the tail, referenced nodes go back to the active
    /// head, the others to the inactive head; at most nr_scans nodes.
    fn rotate_active(&mut self, l: usize) {
        let active = self.lists[l].active;
        if self.links.is_empty(active) {
            return;
        }
        let first = self.links.next(active);
        let mut id = self.links.prev(active);
        let mut i = 0;
        while id != active {
            let tmp = self.links.prev(id);
            if self.node(id).referenced {
                self.move_node(l, id, LruListType::Active);
            } else {
                self.move_node(l, id, LruListType::Inactive);
            }
            i += 1;
            if i == self.nr_scans || id == first {
                break;
            }
            id = tmp;
        }
    }

    /// `__bpf_lru_list_rotate_inactive()`: from the cursor towards the head, referenced nodes
    /// move to the active list; the cursor stays where the scan stopped.
    fn rotate_inactive(&mut self, l: usize) {
        let inactive = self.lists[l].inactive;
        if self.links.is_empty(inactive) {
            return;
        }
        let mut last = self.links.next(self.lists[l].next_inactive_rotation);
        if last == inactive {
            last = self.links.next(last);
        }
        let mut cur = self.lists[l].next_inactive_rotation;
        let mut next = inactive;
        let mut i = 0;
        while i < self.nr_scans {
            if cur == inactive {
                cur = self.links.prev(cur);
                continue;
            }
            next = self.links.prev(cur);
            if self.node(cur).referenced {
                self.move_node(l, cur, LruListType::Active);
            }
            if cur == last {
                break;
            }
            cur = next;
            i += 1;
        }
        self.lists[l].next_inactive_rotation = next;
    }

    /// `__bpf_lru_list_shrink_inactive()`: from the inactive tail, evict unreferenced nodes
    /// (their elements leave the table) until `tgt` are free or nr_scans nodes were seen.
    fn shrink_inactive(&mut self, l: usize, tgt: u32, to: FreeTo, del: DelFromHtab) -> u32 {
        let inactive = self.lists[l].inactive;
        let mut shrunk = 0;
        let mut i = 0;
        let mut id = self.links.prev(inactive);
        while id != inactive {
            let tmp = self.links.prev(id);
            let n = *self.node(id);
            if n.referenced {
                self.move_node(l, id, LruListType::Active);
            } else if del(id, n.hash) {
                self.move_to_free(l, id, to);
                shrunk += 1;
                if shrunk == tgt {
                    break;
                }
            }
            i += 1;
            if i == self.nr_scans {
                break;
            }
            id = tmp;
        }
        shrunk
    }

    /// `__bpf_lru_list_shrink()`: if nothing unreferenced could go, evict the oldest node of
    /// the inactive list (or, if it is empty, of the active list) regardless of its ref bit.
    fn shrink(&mut self, l: usize, tgt: u32, to: FreeTo, del: DelFromHtab) -> u32 {
        let shrunk = self.shrink_inactive(l, tgt, to, &mut *del);
        if shrunk > 0 {
            return shrunk;
        }
        let list = if !self.links.is_empty(self.lists[l].inactive) {
            self.lists[l].inactive
        } else {
            self.lists[l].active
        };
        let mut id = self.links.prev(list);
        while id != list {
            let tmp = self.links.prev(id);
            if del(id, self.node(id).hash) {
                self.move_to_free(l, id, to);
                return 1;
            }
            id = tmp;
        }
        0
    }

    /// `__bpf_lru_list_rotate()`.
    fn rotate(&mut self, l: usize) {
        if self.inactive_low(l) {
            self.rotate_active(l);
        }
        self.rotate_inactive(l);
    }

    /// `__local_list_flush()`: a CPU's pending nodes, oldest first, join the common list:
    /// referenced ones the active list, the others the inactive list.
    fn local_list_flush(&mut self, cpu: usize) {
        let pending = self.local[cpu].pending;
        let mut id = self.links.prev(pending);
        while id != pending {
            let tmp = self.links.prev(id);
            let tgt = if self.node(id).referenced {
                LruListType::Active
            } else {
                LruListType::Inactive
            };
            self.move_in(0, id, tgt);
            id = tmp;
        }
    }

    /// `bpf_lru_list_pop_free_to_local()`: flush, rotate, then harvest up to target_free
    /// free nodes (shrinking the list for the rest) into the CPU's local free list.
    fn pop_free_to_local(&mut self, cpu: usize, del: DelFromHtab) {
        self.local_list_flush(cpu);
        self.rotate(0);
        let nfree = (self.lists[0].free.min(self.target_free as u64)) as u32;
        self.lists[0].free -= nfree as u64;
        self.local[cpu].free += nfree as u64;
        if nfree < self.target_free {
            self.shrink(0, self.target_free - nfree, FreeTo::Local(cpu), del);
        }
    }

    /// `__local_list_add_pending()`.
    fn local_list_add_pending(&mut self, cpu: usize, id: u32, hash: u32) {
        let n = self.node_mut(id);
        n.hash = hash;
        n.cpu = cpu as u32;
        n.ty = LruListType::LocalPending;
        n.referenced = false;
        let pending = self.local[cpu].pending;
        self.links.add(id, pending);
    }

    /// `__local_list_pop_free()`.
    fn local_list_pop_free(&mut self, cpu: usize) -> Option<u32> {
        if self.local[cpu].free == 0 {
            return None;
        }
        self.local[cpu].free -= 1;
        Some(self.take_free_node(cpu as u32, LruListType::LocalFree))
    }

    /// `__local_list_pop_pending()`: the oldest pending node whose element can be removed,
    /// unreferenced ones first.
    fn local_list_pop_pending(&mut self, cpu: usize, del: DelFromHtab) -> Option<u32> {
        let pending = self.local[cpu].pending;
        for force in [false, true] {
            let mut id = self.links.prev(pending);
            while id != pending {
                let n = *self.node(id);
                if (!n.referenced || force) && del(id, n.hash) {
                    self.links.del(id);
                    return Some(id);
                }
                id = self.links.prev(id);
            }
        }
        None
    }

    /// `bpf_percpu_lru_pop_free()`.
    fn percpu_lru_pop_free(&mut self, cpu: usize, hash: u32, del: DelFromHtab) -> Option<u32> {
        self.rotate(cpu);
        if self.lists[cpu].free == 0 {
            self.shrink(cpu, PERCPU_FREE_TARGET, FreeTo::OwnList, del);
        }
        if self.lists[cpu].free == 0 {
            return None;
        }
        self.lists[cpu].free -= 1;
        let id = self.take_free_node(cpu as u32, LruListType::Free);
        self.node_mut(id).hash = hash;
        self.move_node(cpu, id, LruListType::Inactive);
        Some(id)
    }

    /// `bpf_common_lru_pop_free()`: the CPU's local free list, refilled from the common list;
    /// failing that, steal round-robin from the CPUs' local free and pending lists.
    fn common_lru_pop_free(&mut self, cpu: usize, hash: u32, del: DelFromHtab) -> Option<u32> {
        let mut node = self.local_list_pop_free(cpu);
        if node.is_none() {
            self.pop_free_to_local(cpu, &mut *del);
            node = self.local_list_pop_free(cpu);
        }
        if let Some(id) = node {
            self.local_list_add_pending(cpu, id, hash);
            return Some(id);
        }
        let first_steal = self.local[cpu].next_steal;
        let mut steal = first_steal;
        let node = loop {
            let victim = steal as usize;
            let node = self
                .local_list_pop_free(victim)
                .or_else(|| self.local_list_pop_pending(victim, &mut *del));
            steal = (steal + 1) % self.ncpus;
            if node.is_some() || steal == first_steal {
                break node;
            }
        };
        self.local[cpu].next_steal = steal;
        let id = node?;
        self.local_list_add_pending(cpu, id, hash);
        Some(id)
    }

    /// `bpf_lru_pop_free()`: a node for a new element on `cpu`; `None` is ENOMEM to the caller.
    pub fn pop_free(&mut self, cpu: u32, hash: u32, del: DelFromHtab) -> Option<u32> {
        let cpu = (cpu % self.ncpus) as usize;
        if self.percpu {
            self.percpu_lru_pop_free(cpu, hash, del)
        } else {
            self.common_lru_pop_free(cpu, hash, del)
        }
    }

    /// `bpf_lru_push_free()`: the node of an element that left the table. A common-LRU node
    /// still pending returns to its CPU's local free list; any other to its list's free list.
    pub fn push_free(&mut self, id: u32) {
        let n = *self.node(id);
        if self.percpu {
            // `bpf_percpu_lru_push_free()`.
            let l = n.cpu as usize;
            self.move_to_free(l, id, FreeTo::OwnList);
            return;
        }
        if n.ty == LruListType::LocalPending {
            self.release_node(id);
            self.local[n.cpu as usize].free += 1;
            return;
        }
        // `bpf_lru_list_push_free()`.
        self.move_to_free(0, id, FreeTo::OwnList);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of hash -> present, standing in for the htab.
    fn del_all(present: &mut std::collections::BTreeSet<u32>) -> impl FnMut(u32, u32) -> bool + '_ {
        move |_id, hash| present.remove(&hash)
    }

    #[test]
    fn common_lru_evicts_the_oldest_unreferenced_element() {
        let mut lru = BpfLru::new(false, 4, 2, true);
        let mut present = std::collections::BTreeSet::new();
        for h in 1..=4 {
            assert!(lru.pop_free(0, h, &mut del_all(&mut present)).is_some());
            present.insert(h);
        }
        lru.pop_free(0, 5, &mut del_all(&mut present))
            .expect("a node");
        assert!(
            !present.contains(&1),
            "the first element is evicted: {present:?}"
        );
        assert_eq!(present.len(), 3);
    }

    #[test]
    fn a_referenced_element_survives_one_shrink() {
        let mut lru = BpfLru::new(false, 4, 1, true);
        let mut present = std::collections::BTreeSet::new();
        let mut ids = Vec::new();
        for h in 1..=4 {
            ids.push(
                lru.pop_free(0, h, &mut del_all(&mut present))
                    .expect("a node"),
            );
            present.insert(h);
        }
        lru.set_ref(ids[0]);
        lru.pop_free(0, 5, &mut del_all(&mut present))
            .expect("a node");
        assert!(present.contains(&1), "{present:?}");
    }

    /// 6.1 (no target_free): a CPU that finds the common list empty evicts LOCAL_FREE_TARGET
    /// elements at once, so the fifth key of a full four-entry map is left alone.
    #[test]
    fn without_target_free_a_cpu_evicts_local_free_target_at_once() {
        let mut lru = BpfLru::new(false, 4, 2, false);
        let mut present = std::collections::BTreeSet::new();
        for h in 1..=5 {
            lru.pop_free(0, h, &mut del_all(&mut present))
                .expect("a node");
            present.insert(h);
        }
        assert_eq!(present.into_iter().collect::<Vec<_>>(), vec![5]);
    }

    /// A dry per-CPU list frees up to PERCPU_FREE_TARGET nodes at once, so a full CPU list
    /// of two loses both elements; the other CPU's list is untouched.
    #[test]
    fn percpu_lists_are_private_to_their_cpu_and_shrink_in_batches() {
        let mut lru = BpfLru::new(true, 4, 2, true);
        let mut present = std::collections::BTreeSet::new();
        for h in 1..=2 {
            lru.pop_free(0, h, &mut del_all(&mut present))
                .expect("a node");
            present.insert(h);
        }
        // CPU 0's two nodes are used up; the next pop on CPU 0 evicts both, CPU 1 still has room.
        lru.pop_free(0, 3, &mut del_all(&mut present))
            .expect("a node");
        assert!(present.is_empty(), "{present:?}");
        present.insert(3);
        lru.pop_free(1, 4, &mut del_all(&mut present))
            .expect("a node");
        assert_eq!(present.len(), 1);
    }
}
