use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

pub fn to_hex(hash: &Hash) -> String {
    data_encoding::HEXLOWER.encode(hash)
}

pub fn from_hex(raw: &str) -> Option<Hash> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(raw.as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
}

/// A perfect subtree: the `index`-th subtree of `2^level` leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

impl NodeId {
    /// The sequence number of the leaf whose append completed this subtree:
    /// storage keys nodes by `(completed_by, level)`, which is also the
    /// order in which they are created.
    pub fn completed_by(self) -> u64 {
        ((self.index + 1) << self.level) - 1
    }

    pub fn from_completed_by(seq: u64, level: u32) -> Self {
        Self {
            level,
            index: ((seq + 1) >> level) - 1,
        }
    }
}

/// Splits `[start, end)` into the perfect subtrees RFC 6962's recursion
/// would produce, largest first. Every range that appears in a root or proof
/// computation is aligned so that this is exact.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut at = start;
    while at < end {
        let mut level = 0u32;
        // Grow while the subtree stays aligned and inside the range.
        while level < 63 {
            let size = 1u64 << (level + 1);
            if !at.is_multiple_of(size) || at + size > end {
                break;
            }
            level += 1;
        }
        nodes.push(NodeId {
            level,
            index: at >> level,
        });
        at += 1u64 << level;
    }
    nodes
}

/// The hash of a range from its perfect subtrees (largest first), folded
/// right to left as RFC 6962 does.
pub fn fold_range(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return empty_root();
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The right edge of the tree: the roots of its perfect subtrees, largest
/// first. Appending a leaf returns the perfect subtrees it completes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns every node it completes, the leaf first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let index = self.size;
        let mut created = vec![(NodeId { level: 0, index }, leaf)];
        let mut current = leaf;
        let mut level = 0u32;
        let mut at = index;
        while at & 1 == 1 {
            let left = self.nodes.pop().expect("frontier holds the left sibling");
            current = node_hash(&left, &current);
            level += 1;
            at >>= 1;
            created.push((NodeId { level, index: at }, current));
        }
        self.nodes.push(current);
        self.size += 1;
        created
    }

    pub fn root(&self) -> Hash {
        fold_range(&self.nodes)
    }

    /// `size` as 8 bytes big-endian, then the hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 32 * self.nodes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for n in &self.nodes {
            out.extend_from_slice(n);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(32) {
            return None;
        }
        let size = u64::from_be_bytes(bytes[..8].try_into().ok()?);
        let nodes: Vec<Hash> = bytes[8..]
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32-byte chunk"))
            .collect();
        // One perfect subtree per set bit of the size.
        (nodes.len() == size.count_ones() as usize).then_some(Self { size, nodes })
    }
}

/// The nodes needed for the inclusion proof of leaf `index` in a tree of
/// `size` leaves: each element is a range (as its perfect subtrees) whose
/// folded hash is one proof entry, bottom first (RFC 6962 `PATH`).
pub fn inclusion_plan(index: u64, size: u64) -> Option<Vec<Vec<NodeId>>> {
    if index >= size {
        return None;
    }
    let mut plan = Vec::new();
    let (mut start, mut end) = (0u64, size);
    while end - start > 1 {
        let k = split_point(end - start);
        if index < start + k {
            plan.push(range_nodes(start + k, end));
            end = start + k;
        } else {
            plan.push(range_nodes(start, start + k));
            start += k;
        }
    }
    plan.reverse();
    Some(plan)
}

/// The nodes needed to prove that the tree of `old` leaves is a prefix of
/// the tree of `new` leaves (RFC 6962 `PROOF`), in proof order.
pub fn consistency_plan(old: u64, new: u64) -> Option<Vec<Vec<NodeId>>> {
    if old > new {
        return None;
    }
    if old == 0 || old == new {
        return Some(Vec::new());
    }
    let mut plan = Vec::new();
    let (mut m, mut start, mut end, mut complete) = (old, 0u64, new, true);
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                plan.push(range_nodes(start, end));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            plan.push(range_nodes(start + k, end));
            end = start + k;
        } else {
            plan.push(range_nodes(start, start + k));
            m -= k;
            start += k;
            complete = false;
        }
    }
    plan.reverse();
    Some(plan)
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the index is outside the tree")]
    OutOfRange,
    #[error("the proof has the wrong length")]
    WrongLength,
    #[error("the proof does not lead to the root")]
    RootMismatch,
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange);
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_size == 0 || old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// An in-memory tree holding every perfect node, as storage does.
    struct MemTree {
        frontier: Frontier,
        nodes: HashMap<NodeId, Hash>,
    }

    impl MemTree {
        fn new(leaves: &[Vec<u8>]) -> Self {
            let mut t = Self {
                frontier: Frontier::default(),
                nodes: HashMap::new(),
            };
            for l in leaves {
                for (id, h) in t.frontier.push(leaf_hash(l)) {
                    t.nodes.insert(id, h);
                }
            }
            t
        }

        fn resolve(&self, plan: &[Vec<NodeId>]) -> Vec<Hash> {
            plan.iter()
                .map(|range| fold_range(&range.iter().map(|id| self.nodes[id]).collect::<Vec<_>>()))
                .collect()
        }

        fn root_at(&self, size: u64) -> Hash {
            fold_range(
                &range_nodes(0, size)
                    .iter()
                    .map(|id| self.nodes[id])
                    .collect::<Vec<_>>(),
            )
        }
    }

    /// RFC 6962's recursive definition, as the reference.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn test_leaves() -> Vec<Vec<u8>> {
        // The leaves of the certificate-transparency reference tests.
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| data_encoding::HEXLOWER.decode(h.as_bytes()).unwrap())
        .collect()
    }

    #[test]
    fn reference_roots() {
        let leaves = test_leaves();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let tree = MemTree::new(&leaves);
        for (i, want) in expected.iter().enumerate() {
            let size = i as u64 + 1;
            assert_eq!(to_hex(&tree.root_at(size)), *want, "root of {size} leaves");
            assert_eq!(to_hex(&mth(&leaves[..=i])), *want);
        }
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn frontier_round_trips() {
        let tree = MemTree::new(&test_leaves()[..7]);
        let bytes = tree.frontier.to_bytes();
        assert_eq!(Frontier::from_bytes(&bytes), Some(tree.frontier.clone()));
        assert_eq!(Frontier::from_bytes(&bytes[..40]), None);
    }

    #[test]
    fn node_ids_round_trip_through_their_completing_leaf() {
        for level in 0..5 {
            for index in 0..20 {
                let id = NodeId { level, index };
                assert_eq!(NodeId::from_completed_by(id.completed_by(), level), id);
            }
        }
    }

    proptest! {
        #[test]
        fn every_inclusion_proof_verifies_and_tampering_fails(n in 1usize..70, pick in 0usize..70, flip in 0usize..32) {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| format!("record {i}").into_bytes()).collect();
            let tree = MemTree::new(&leaves);
            let root = mth(&leaves);
            prop_assert_eq!(tree.frontier.root(), root);
            let index = (pick % n) as u64;
            let proof = tree.resolve(&inclusion_plan(index, n as u64).unwrap());
            let leaf = leaf_hash(&leaves[index as usize]);
            prop_assert!(verify_inclusion(&leaf, index, n as u64, &proof, &root).is_ok());
            // A changed leaf, a wrong index or a damaged proof never verifies.
            let mut bad = leaf;
            bad[flip] ^= 1;
            prop_assert!(verify_inclusion(&bad, index, n as u64, &proof, &root).is_err());
            if n > 1 {
                let other = (index + 1) % n as u64;
                prop_assert!(verify_inclusion(&leaf, other, n as u64, &proof, &root).is_err());
                let mut damaged = proof.clone();
                damaged[0][flip] ^= 1;
                prop_assert!(verify_inclusion(&leaf, index, n as u64, &damaged, &root).is_err());
            }
        }

        #[test]
        fn every_consistency_proof_verifies_and_rewritten_history_fails(n in 1usize..70, m in 1usize..70, flip in 0usize..32) {
            let (old, new) = (m.min(n) as u64, n.max(m) as u64);
            let leaves: Vec<Vec<u8>> = (0..new).map(|i| format!("record {i}").into_bytes()).collect();
            let tree = MemTree::new(&leaves);
            let old_root = tree.root_at(old);
            let new_root = tree.root_at(new);
            let proof = tree.resolve(&consistency_plan(old, new).unwrap());
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_ok());
            // History rewritten: one early record changed.
            let mut forged = leaves.clone();
            forged[0] = b"forged".to_vec();
            let forged_root = mth(&forged[..old as usize]);
            if old < new {
                prop_assert!(verify_consistency(old, new, &forged_root, &new_root, &proof).is_err());
                if !proof.is_empty() {
                    let mut damaged = proof.clone();
                    damaged[0][flip] ^= 1;
                    prop_assert!(verify_consistency(old, new, &old_root, &new_root, &damaged).is_err());
                }
            }
        }
    }
}
