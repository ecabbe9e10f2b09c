//! Splitting a simulation into parts that run side by side, one per core.
//!
//! A simulated year is hundreds of thousands of small steps on one virtual clock: a run, its
//! messages, the dispatcher's round. Done in one line they keep one core busy while the other
//! waits. But communities do not see each other: every table the workflows and the dispatcher
//! read is keyed by community, and `wuyed simulate --community` already runs one alone. The one
//! thing they share is the SMS per-number limits (`same_content_secs`, `daily_limit`), which
//! count every message to a number, whatever community sent it. So communities are grouped when
//! someone in one (an owner, a staff member) has an SMS number someone in the other has, each
//! group stays whole, and the groups are packed into parts of about equal households. Each part
//! runs on its own copy of the database and its own clock; the parts' captures, merged and
//! sorted, are what one simulation of everything captures (the demo-year e2e test checks this,
//! and `docs/BENCHMARKS.md` on ten communities). Row ids (runs, timers, events) do count
//! differently in a part's copy, and a message from an event or timer run carries one in its
//! idempotency key; nothing printed depends on them: the one place a key showed through, the
//! minute quiet hours spread a held message to, is seeded without them
//! (`OutboxMessage::spread_seed`).

use std::collections::HashMap;

/// Packs `communities` (in configuration order) into at most `parts` non-empty parts. `linked`
/// are pairs that must stay in one part; `households` weighs each community (a missing one
/// weighs like one household). Each part lists its communities in configuration order, and the
/// first part is the heaviest.
pub fn split(
    communities: &[String],
    linked: &[(String, String)],
    households: &HashMap<String, i64>,
    parts: usize,
) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = communities
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    // Union-find over the communities' positions; the root is the group's first community.
    let mut root: Vec<usize> = (0..communities.len()).collect();
    fn find(root: &mut [usize], mut i: usize) -> usize {
        while root[i] != i {
            root[i] = root[root[i]];
            i = root[i];
        }
        i
    }
    for (a, b) in linked {
        if let (Some(&a), Some(&b)) = (index.get(a.as_str()), index.get(b.as_str())) {
            let (ra, rb) = (find(&mut root, a), find(&mut root, b));
            root[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for (i, community) in communities.iter().enumerate() {
        let r = find(&mut root, i);
        let g = *group_of.entry(r).or_insert_with(|| {
            groups.push((0, Vec::new()));
            groups.len() - 1
        });
        let weight = households.get(community).copied().unwrap_or(1).max(1);
        groups[g].0 += weight as u64;
        groups[g].1.push(i);
    }
    // Heaviest group first into the lightest part: within 4/3 of the best packing, and
    // deterministic (ties keep configuration order).
    groups.sort_by(|a, b| b.0.cmp(&a.0).then(a.1[0].cmp(&b.1[0])));
    let mut packed: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); parts.max(1)];
    for (weight, members) in groups {
        let lightest = packed
            .iter_mut()
            .min_by_key(|(w, _)| *w)
            .expect("at least one part");
        lightest.0 += weight;
        lightest.1.extend(members);
    }
    packed.retain(|(_, members)| !members.is_empty());
    packed.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    packed
        .into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members
                .into_iter()
                .map(|i| communities[i].clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("c{i:02}")).collect()
    }

    fn weights(w: &[(&str, i64)]) -> HashMap<String, i64> {
        w.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }

    #[test]
    fn equal_communities_fill_the_parts_evenly() {
        let parts = split(&ids(10), &[], &HashMap::new(), 2);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 5);
        assert_eq!(parts[1].len(), 5);
        let mut all: Vec<String> = parts.concat();
        all.sort();
        assert_eq!(all, ids(10), "every community exactly once");
    }

    #[test]
    fn communities_sharing_a_number_stay_together() {
        let linked = vec![
            ("c01".to_string(), "c04".to_string()),
            ("c04".to_string(), "c02".to_string()),
        ];
        let parts = split(&ids(4), &linked, &HashMap::new(), 2);
        let with_c01 = parts.iter().find(|p| p.contains(&"c01".into())).unwrap();
        assert_eq!(with_c01, &vec!["c01", "c02", "c04"]);
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn households_balance_the_parts() {
        let w = weights(&[("c01", 900), ("c02", 500), ("c03", 400), ("c04", 100)]);
        let parts = split(&ids(4), &[], &w, 2);
        assert_eq!(parts, vec![vec!["c01", "c04"], vec!["c02", "c03"]]);
    }

    #[test]
    fn never_more_parts_than_groups() {
        let linked = vec![("c01".to_string(), "c02".to_string())];
        assert_eq!(split(&ids(2), &linked, &HashMap::new(), 4).len(), 1);
        assert_eq!(split(&ids(3), &[], &HashMap::new(), 1), vec![ids(3)]);
        assert!(split(&[], &[], &HashMap::new(), 2).is_empty());
    }
}
