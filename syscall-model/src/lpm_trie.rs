//! kernel/bpf/lpm_trie.c: BPF_MAP_TYPE_LPM_TRIE, longest-prefix match.
//!
//! A key is a u32 `prefixlen` (host order) followed by `data_size` bytes whose bits are read
//! most significant first. The trie is the kernel's: a path-compressed binary trie whose
//! intermediate nodes (`LPM_TREE_NODE_FLAG_IM`) hold no value and always have two children.
//! LOOKUP finds the longest stored prefix covering the key; UPDATE and DELETE are exact;
//! GET_NEXT_KEY walks post-order (more specific prefixes first). Node data keeps every byte
//! of the key that created it, bits past the prefix included, as the kernel stores it.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::hashtab::bpf_map_flags_access_ok;
use crate::map::{BatchOps, BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr};

const FILE: &str = "kernel/bpf/lpm_trie.c";

/// `LPM_CREATE_FLAG_MASK`.
const LPM_CREATE_FLAG_MASK: u32 = BPF_F_NO_PREALLOC | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;
const LPM_DATA_SIZE_MAX: u32 = 256;
const LPM_DATA_SIZE_MIN: u32 = 1;
/// `sizeof(struct bpf_lpm_trie_key_u8)`: the prefixlen.
const LPM_KEY_HDR: u32 = 4;

/// `trie_alloc()`: LPM_TRIE has no alloc_check; every rule is here.
pub fn trie_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "trie_alloc";
    ctx.enter(F, FILE, String::new);
    let node_size = ctx.profile().sizes.lpm_trie_node;
    let val_max = ctx.profile().kmalloc_max_size - LPM_DATA_SIZE_MAX as u64 - node_size;
    check!(ctx, F, attr.max_entries == 0
            || !attr.has(BPF_F_NO_PREALLOC)
            || attr.map_flags & !LPM_CREATE_FLAG_MASK != 0
            || !bpf_map_flags_access_ok(attr.map_flags)
            || attr.key_size < LPM_KEY_HDR + LPM_DATA_SIZE_MIN
            || attr.key_size > LPM_KEY_HDR + LPM_DATA_SIZE_MAX
            || attr.value_size < 1
            || attr.value_size as u64 > val_max => Errno::EINVAL,
        "max_entries > 0, BPF_F_NO_PREALLOC set (it is mandatory), flags within NO_PREALLOC, \
         NUMA_NODE and the access flags, key_size 5..=260 (prefixlen + 1..=256 data bytes), \
         value_size 1..=KMALLOC_MAX_SIZE - 256 - sizeof(struct lpm_trie_node)",
        "max_entries={} map_flags={:#x} key_size={} value_size={} (max {val_max})",
        attr.max_entries, attr.map_flags, attr.key_size, attr.value_size);
    let data_size = (attr.key_size - LPM_KEY_HDR) as usize;
    let trie = LpmTrie {
        data_size,
        value_size: attr.value_size as usize,
        stride: (Node::SIZE + data_size).next_multiple_of(4),
        slab: Vec::new(),
        values: Vec::new(),
        max_prefixlen: data_size as u32 * 8,
        root: None,
        free: Vec::new(),
        n_entries: 0,
        node_size,
        path: Vec::new(),
    };
    Ok((MapDesc::from_attr(attr), Box::new(trie)))
}

/// A node's fixed part. In the trie's slab it is followed by the node's key data, as a
/// kernel `lpm_trie_node` holds its data inline; its value lives in a second slab at the
/// node's index.
#[derive(Clone, Copy)]
struct Node {
    prefixlen: u32,
    /// An intermediate node: no value, exactly two children.
    im: bool,
    child: [Link; 2],
}

impl Node {
    /// Bytes of the fixed part in the slab: four u32 words (prefixlen, flags, two links).
    const SIZE: usize = 16;
    /// The words of the fixed part.
    const PREFIXLEN: usize = 0;
    const FLAGS: usize = 1;
    /// The first of the two child links.
    const CHILD: usize = 2;
    const FLAG_IM: u32 = 1;

    fn decode(b: &[u8]) -> Node {
        let word =
            |w: usize| u32::from_ne_bytes([b[w * 4], b[w * 4 + 1], b[w * 4 + 2], b[w * 4 + 3]]);
        Node {
            prefixlen: word(Node::PREFIXLEN),
            im: word(Node::FLAGS) & Node::FLAG_IM != 0,
            child: [Link(word(Node::CHILD)), Link(word(Node::CHILD + 1))],
        }
    }

    fn encode(self, b: &mut [u8]) {
        let mut words = [0u32; 4];
        words[Node::PREFIXLEN] = self.prefixlen;
        words[Node::FLAGS] = if self.im { Node::FLAG_IM } else { 0 };
        words[Node::CHILD] = self.child[0].0;
        words[Node::CHILD + 1] = self.child[1].0;
        for (w, word) in words.into_iter().enumerate() {
            b[w * 4..w * 4 + 4].copy_from_slice(&word.to_ne_bytes());
        }
    }
}

/// A child link: a node index, or none. Four bytes, so a node takes 16 and a walk down the
/// trie reads less memory per level.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Link(u32);

impl Link {
    const NONE: Link = Link(u32::MAX);

    fn of(i: usize) -> Link {
        // trie_update_elem() refuses (ENOMEM) an update that could number a node past this.
        Link(
            u32::try_from(i)
                .unwrap_or(Link::NONE.0 - 1)
                .min(Link::NONE.0 - 1),
        )
    }

    fn to(i: Option<usize>) -> Link {
        i.map_or(Link::NONE, Link::of)
    }

    fn get(self) -> Option<usize> {
        (self != Link::NONE).then_some(self.0 as usize)
    }
}

/// `struct lpm_trie`; nodes live in a slab, linked by index. A node's fixed part and key
/// data sit together, so a walk down the trie reads one place per level; values are in a
/// second slab, read only at the end of a lookup.
struct LpmTrie {
    data_size: usize,
    value_size: usize,
    /// `stride` bytes per node index: the [`Node`], then `data_size` bytes of key data.
    slab: Vec<u8>,
    /// `Node::SIZE + data_size`, rounded up to whole u32 words.
    stride: usize,
    /// `value_size` bytes per node index (unused for intermediate nodes).
    values: Vec<u8>,
    max_prefixlen: u32,
    root: Option<usize>,
    /// Node indexes released and not reused yet.
    free: Vec<usize>,
    n_entries: u32,
    /// `sizeof(struct lpm_trie_node)` of the profiled kernel.
    node_size: u64,
    /// The path trie_get_next_key() keeps from the root to a key (the kernel allocates its
    /// node stack per call); kept between calls, so a walk allocates nothing once it has
    /// been as deep.
    path: Vec<usize>,
}

/// Where a node hangs: the root, or a child slot of a node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Root,
    Child(usize, usize),
}

/// Where [`LpmTrie::walk`] stopped: at `node` (none: the free `slot` it would hang from),
/// which hangs from `slot`; `parent` is the node above it, hanging from `above`; `matchlen`
/// is how far the key and `node` agree.
struct Walk {
    slot: Slot,
    above: Slot,
    parent: Option<usize>,
    node: Option<usize>,
    matchlen: u32,
}

/// `__longest_prefix_match()`: the number of leading bits `a` and `b` share, at most
/// `limit`. Eight bytes at a time while they last, then four, then single bytes, stopping
/// once `limit` is reached; the kernel steps by eight once (on 64-bit machines with cheap
/// unaligned loads), then by four, two and one, and counts the same bits.
#[inline]
fn prefix_match(a: &[u8], b: &[u8], limit: u32) -> u32 {
    let n = a.len().min(b.len());
    let (mut i, mut len) = (0, 0u32);
    while i + 8 <= n && len < limit {
        let x = u64::from_be_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        if x != y {
            return (len + (x ^ y).leading_zeros()).min(limit);
        }
        (i, len) = (i + 8, len + 64);
    }
    if i + 4 <= n && len < limit {
        let x = u32::from_be_bytes(a[i..i + 4].try_into().unwrap_or_default());
        let y = u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or_default());
        if x != y {
            return (len + (x ^ y).leading_zeros()).min(limit);
        }
        (i, len) = (i + 4, len + 32);
    }
    while i < n && len < limit {
        if a[i] != b[i] {
            return (len + (a[i] ^ b[i]).leading_zeros()).min(limit);
        }
        (i, len) = (i + 1, len + 8);
    }
    len.min(limit)
}

/// `extract_bit()`: bit `index` of `data`, most significant bit of byte 0 first.
#[inline]
fn extract_bit(data: &[u8], index: u32) -> usize {
    let byte = data.get((index / 8) as usize).copied().unwrap_or(0);
    ((byte >> (7 - index % 8)) & 1) as usize
}

impl LpmTrie {
    /// Node indexes handed out so far (live or free).
    fn n_nodes(&self) -> usize {
        self.slab.len() / self.stride
    }

    fn node(&self, i: usize) -> Node {
        Node::decode(&self.slab[i * self.stride..][..Node::SIZE])
    }

    /// Word `w` of node `i`'s fixed part (see [`Node::encode`]), read on its own: a lookup
    /// reads the prefix length, the flags and one link, not the whole node.
    #[inline]
    fn word(&self, i: usize, w: usize) -> u32 {
        let at = i * self.stride + w * 4;
        match self.slab.get(at..at + 4) {
            Some(b) => u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            None => Link::NONE.0,
        }
    }

    fn put(&mut self, i: usize, node: Node) {
        node.encode(&mut self.slab[i * self.stride..][..Node::SIZE]);
    }

    fn set(&mut self, slot: Slot, v: Option<usize>) {
        match slot {
            Slot::Root => self.root = v,
            Slot::Child(n, b) => {
                let mut node = self.node(n);
                node.child[b] = Link::to(v);
                self.put(n, node);
            }
        }
    }

    /// The key data a node was made from (bits past its prefix included).
    fn data(&self, i: usize) -> &[u8] {
        &self.slab[i * self.stride + Node::SIZE..][..self.data_size]
    }

    fn value(&self, i: usize) -> &[u8] {
        &self.values[i * self.value_size..(i + 1) * self.value_size]
    }

    /// A new node with its key data and value (an intermediate node has none: `value` empty).
    fn alloc(&mut self, node: Node, data: &[u8], value: &[u8]) -> usize {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.n_nodes();
                self.slab.resize((i + 1) * self.stride, 0);
                self.values.resize((i + 1) * self.value_size, 0);
                i
            }
        };
        self.put(i, node);
        let (ds, vs) = (self.data_size, self.value_size);
        self.slab[i * self.stride + Node::SIZE..][..ds].copy_from_slice(&data[..ds]);
        let v = &mut self.values[i * vs..(i + 1) * vs];
        v.fill(0);
        v[..value.len().min(vs)].copy_from_slice(&value[..value.len().min(vs)]);
        i
    }

    fn release(&mut self, i: usize) {
        debug_assert!(!self.free.contains(&i), "node {i} released twice");
        self.free.push(i);
        if self.free.len() == self.n_nodes() {
            // Empty again: give the slabs back.
            self.slab = Vec::new();
            self.free = Vec::new();
            self.values = Vec::new();
        }
    }

    /// `longest_prefix_match()`: how many leading bits of node `n` (whose fixed part is
    /// `node`) and the key agree, at most the shorter of the two prefixes.
    fn longest_prefix_match(&self, n: usize, node: &Node, kplen: u32, kdata: &[u8]) -> u32 {
        prefix_match(self.data(n), kdata, node.prefixlen.min(kplen))
    }

    fn split_key<'k>(&self, key: &'k [u8]) -> (u32, &'k [u8]) {
        (
            u32::from_le_bytes([key[0], key[1], key[2], key[3]]),
            &key[4..4 + self.data_size],
        )
    }

    /// The walk `trie_update_elem()` and `trie_delete_elem()` share: down from the root as
    /// long as a node's prefix is a proper prefix of the key (`kplen` bits of `kdata`). It
    /// reads each node's prefix length and links straight from the slab, not the whole node.
    #[inline(always)]
    fn walk(&self, kplen: u32, kdata: &[u8]) -> Walk {
        let mut w = Walk {
            slot: Slot::Root,
            above: Slot::Root,
            parent: None,
            node: self.root,
            matchlen: 0,
        };
        while let Some(n) = w.node {
            // Both links are read with the prefix length, so the next node's address does
            // not wait on a second load once the bit is known.
            let np = self.word(n, Node::PREFIXLEN);
            let child = [self.word(n, Node::CHILD), self.word(n, Node::CHILD + 1)];
            w.matchlen = prefix_match(self.data(n), kdata, np.min(kplen));
            if np != w.matchlen || np == kplen {
                break;
            }
            let bit = extract_bit(kdata, np);
            (w.parent, w.above, w.slot) = (Some(n), w.slot, Slot::Child(n, bit));
            w.node = Link(child[bit]).get();
        }
        w
    }

    /// `trie_check_add_elem()`: a new entry needs room, and BPF_EXIST needs an existing one.
    fn check_add_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, flags: u64) -> Result<(), Errno> {
        const F: &str = "trie_check_add_elem";
        check!(ctx, F, flags == BPF_EXIST => Errno::ENOENT,
            "BPF_EXIST needs the prefix to be there", "flags={flags:#x} prefix_present=false");
        check!(ctx, F, self.n_entries == map.max_entries => Errno::ENOSPC,
            "fewer than max_entries prefixes for a new one", "n_entries={} max_entries={}", self.n_entries, map.max_entries);
        self.n_entries += 1;
        Ok(())
    }
}

impl BpfMapOps for LpmTrie {
    /// `trie_lookup_elem()`: the longest stored prefix covering the key.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "trie_lookup_elem";
        let (kplen, kdata) = self.split_key(key);
        let max = self.max_prefixlen;
        check!(ctx, F, kplen > max => Errno::ENOENT, "prefixlen <= max_prefixlen", "prefixlen={kplen} max={max}");
        let mut found = None;
        let mut cur = self.root;
        while let Some(n) = cur {
            let prefixlen = self.word(n, Node::PREFIXLEN);
            let matchlen = prefix_match(self.data(n), kdata, prefixlen.min(kplen));
            if matchlen == max {
                found = Some(n);
                break;
            }
            if matchlen < prefixlen {
                break;
            }
            if self.word(n, Node::FLAGS) & Node::FLAG_IM == 0 {
                found = Some(n);
            }
            cur = Link(self.word(n, Node::CHILD + extract_bit(kdata, prefixlen))).get();
        }
        let Some(n) = found else {
            return Err(ctx.fail(
                F,
                FILE,
                "a stored prefix covers the key",
                Errno::ENOENT,
                || format!("no prefix matches /{kplen}"),
            ));
        };
        ctx.note(F, FILE, "the longest matching prefix", || {
            format!("/{}", self.node(n).prefixlen)
        });
        value.copy_from_slice(self.value(n));
        Ok(())
    }

    /// `trie_update_elem()`: exact insert or replace.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "trie_update_elem";
        check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        let (kplen, kdata) = self.split_key(key);
        let max = self.max_prefixlen;
        check!(ctx, F, kplen > max => Errno::EINVAL, "prefixlen <= max_prefixlen", "prefixlen={kplen} max={max}");
        // lpm_trie_node_alloc(): an update makes at most two nodes. The model's links hold
        // node numbers below 2^32 - 1 (the memory of that many nodes is not there anyway).
        let room = self.free.len() + (Link::NONE.0 as usize).saturating_sub(self.n_nodes());
        check!(ctx, F, room < 2 => Errno::ENOMEM,
            "lpm_trie_node_alloc(): memory for the new nodes", "{} nodes", self.n_nodes());
        let new_node = Node {
            prefixlen: kplen,
            im: false,
            child: [Link::NONE; 2],
        };
        let value = &value[..map.value_size as usize];
        // Walk down as long as the node's prefix is a proper prefix of the key.
        let Walk {
            slot,
            node,
            matchlen,
            ..
        } = self.walk(kplen, kdata);
        let Some(n) = node else {
            // A free slot: the new node goes there.
            self.check_add_elem(ctx, map, flags)?;
            let i = self.alloc(new_node, kdata, value);
            self.set(slot, Some(i));
            return Ok(());
        };
        let (np, nim) = (self.node(n).prefixlen, self.node(n).im);
        if np == matchlen {
            // The same prefix: replace the node (an intermediate one becomes a real entry).
            if !nim {
                check!(ctx, F, flags == BPF_NOEXIST => Errno::EEXIST,
                    "BPF_NOEXIST needs a prefix that is not there",
                    "flags={flags:#x} prefix_present=true");
            } else {
                self.check_add_elem(ctx, map, flags)?;
            }
            let children = self.node(n).child;
            let node = Node {
                child: children,
                ..new_node
            };
            let i = self.alloc(node, kdata, value);
            self.set(slot, Some(i));
            self.release(n);
            return Ok(());
        }
        self.check_add_elem(ctx, map, flags)?;
        if matchlen == kplen {
            // The new prefix covers the node: insert it above.
            let bit = extract_bit(self.data(n), matchlen);
            let mut nn = new_node;
            nn.child[bit] = Link::of(n);
            let i = self.alloc(nn, kdata, value);
            self.set(slot, Some(i));
            return Ok(());
        }
        // They part at bit `matchlen`: an intermediate node takes both.
        let im_data = self.data(n).to_vec();
        let new_bit = extract_bit(kdata, matchlen);
        let i_new = self.alloc(new_node, kdata, value);
        let mut child = [Link::NONE; 2];
        child[new_bit] = Link::of(i_new);
        child[1 - new_bit] = Link::of(n);
        let im = Node {
            prefixlen: matchlen,
            im: true,
            child,
        };
        let i_im = self.alloc(im, &im_data, &[]);
        self.set(slot, Some(i_im));
        Ok(())
    }

    /// `trie_delete_elem()`: exact match only.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "trie_delete_elem";
        let (kplen, kdata) = self.split_key(key);
        let max = self.max_prefixlen;
        check!(ctx, F, kplen > max => Errno::EINVAL, "prefixlen <= max_prefixlen", "prefixlen={kplen} max={max}");
        let Walk {
            slot: trim,
            above: trim2,
            parent,
            node,
            matchlen,
        } = self.walk(kplen, kdata);
        let exact = node.filter(|n| {
            let nd = self.node(*n);
            nd.prefixlen == kplen && nd.prefixlen == matchlen && !nd.im
        });
        let Some(n) = exact else {
            return Err(
                ctx.fail(F, FILE, "the exact prefix is stored", Errno::ENOENT, || {
                    format!("no entry for /{kplen}")
                }),
            );
        };
        self.n_entries -= 1;
        let child = self.node(n).child.map(Link::get);
        if child[0].is_some() && child[1].is_some() {
            // Two children: the node stays as an intermediate one.
            let mut node = self.node(n);
            node.im = true;
            self.put(n, node);
            return Ok(());
        }
        if let Some(p) = parent.filter(|p| self.node(*p).im && child == [None, None]) {
            // A leaf under an intermediate parent: the parent goes too, its other child moves up.
            let pc = self.node(p).child.map(Link::get);
            let other = if pc[0] == Some(n) { pc[1] } else { pc[0] };
            self.set(trim2, other);
            self.release(p);
            self.release(n);
            return Ok(());
        }
        self.set(trim, child[0].or(child[1]));
        self.release(n);
        Ok(())
    }

    /// `trie_get_next_key()`: post-order, more specific prefixes before their cover.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        const F: &str = "trie_get_next_key";
        let Some(root) = self.root else {
            return Err(ctx.fail(F, FILE, "the trie is not empty", Errno::ENOENT, String::new));
        };
        let mut search_root = root;
        let mut next = None;
        if let Some((kplen, kdata)) = key
            .map(|k| self.split_key(k))
            .filter(|(p, _)| *p <= self.max_prefixlen)
        {
            let mut stack = std::mem::take(&mut self.path);
            stack.clear();
            let mut matchlen = 0;
            let mut node = Some(root);
            while let Some(n) = node {
                stack.push(n);
                let nd = self.node(n);
                let np = nd.prefixlen;
                matchlen = self.longest_prefix_match(n, &nd, kplen, kdata);
                if np != matchlen || np == kplen {
                    break;
                }
                node = nd.child[extract_bit(kdata, np)].get();
            }
            let exact = node.filter(|n| self.node(*n).prefixlen == matchlen && !self.node(*n).im);
            // The first node after it in post-order: a right subtree to start over in, or the
            // first entry above it.
            let mut restart = None;
            if exact.is_some() {
                let mut cur = *stack.last().expect("non-empty path");
                let mut sp = stack.len() - 1;
                while sp > 0 {
                    let parent = stack[sp - 1];
                    let pc = self.node(parent).child.map(Link::get);
                    if pc[0] == Some(cur) {
                        if let Some(right) = pc[1] {
                            restart = Some(right);
                            break;
                        }
                    }
                    if !self.node(parent).im {
                        next = Some(parent);
                        break;
                    }
                    cur = parent;
                    sp -= 1;
                }
            }
            self.path = stack;
            if exact.is_none() {
                ctx.note(
                    F,
                    FILE,
                    "a key that is not stored starts at the leftmost node",
                    String::new,
                );
            } else {
                match (restart, next) {
                    (Some(r), _) => search_root = r,
                    (None, Some(_)) => {}
                    (None, None) => {
                        return Err(ctx.fail(
                            F,
                            FILE,
                            "a prefix comes after this one",
                            Errno::ENOENT,
                            || format!("/{kplen} is the last in post-order"),
                        ))
                    }
                }
            }
        }
        if next.is_none() {
            // find_leftmost: the first node of the subtree in post-order.
            let mut node = Some(search_root);
            while let Some(n) = node {
                let nd = self.node(n);
                if nd.im {
                    node = nd.child[0].get();
                } else {
                    next = Some(n);
                    node = nd.child[0].get().or(nd.child[1].get());
                }
            }
        }
        let n = next.expect("intermediate nodes have two children");
        next_key[..4].copy_from_slice(&self.node(n).prefixlen.to_le_bytes());
        next_key[4..].copy_from_slice(self.data(n));
        Ok(())
    }

    fn map_batch_ops(&self) -> BatchOps {
        BatchOps::TRIE
    }

    /// `trie_mem_usage()`: only the entries count, not the trie itself.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        (self.node_size + self.data_size as u64 + map.value_size as u64) * self.n_entries as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared leading bits, counted one bit at a time.
    fn bitwise(a: &[u8], b: &[u8], limit: u32) -> u32 {
        let bits = (a.len().min(b.len()) * 8) as u32;
        (0..bits)
            .find(|&i| extract_bit(a, i) != extract_bit(b, i))
            .unwrap_or(bits)
            .min(limit)
    }

    #[test]
    fn prefix_match_counts_the_shared_leading_bits_up_to_the_limit() {
        for size in 1..=20usize {
            let a: Vec<u8> = (0..size)
                .map(|i| (i as u8).wrapping_mul(29) ^ 0x3c)
                .collect();
            for bit in 0..size * 8 {
                let mut b = a.clone();
                b[bit / 8] ^= 0x80 >> (bit % 8);
                for limit in [0, 1, bit as u32, bit as u32 + 1, (size * 8) as u32] {
                    assert_eq!(
                        prefix_match(&a, &b, limit),
                        bitwise(&a, &b, limit),
                        "size {size}, differing bit {bit}, limit {limit}"
                    );
                }
            }
            let all = (size * 8) as u32;
            assert_eq!(prefix_match(&a, &a, all), all, "size {size}, equal");
        }
    }
}
