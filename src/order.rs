//! Dependency order: the one place it is computed. Pure: it imports nothing of the crate.
//! The engine's state keeps it for its graph (computed when the graph is made or reloaded,
//! not after every event); the plan is a run of that engine.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Names in an order where each comes after what it depends on; ties keep the given order.
/// A dependency on a name that is not among `nodes` holds nothing; the members of a cycle
/// (config check refuses them) come last, in the given order. Kahn's algorithm with the ready
/// nodes in a min-heap of positions: O((n + e) log n).
pub fn dependency_order<D>(nodes: &[(&str, D)]) -> Vec<String>
where
    D: AsRef<[String]>,
{
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    let mut waiting: Vec<usize> = vec![0; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, (_, deps)) in nodes.iter().enumerate() {
        for d in deps.as_ref() {
            if let Some(&j) = index.get(d.as_str()) {
                dependents[j].push(i);
                waiting[i] += 1;
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut done = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        done[i] = true;
        order.push(nodes[i].0.to_owned());
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    for (i, (n, _)) in nodes.iter().enumerate() {
        if !done[i] {
            order.push((*n).to_owned());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(nodes: &[(&str, &[&str])]) -> Vec<String> {
        let owned: Vec<(&str, Vec<String>)> = nodes
            .iter()
            .map(|(n, d)| (*n, d.iter().map(|s| (*s).to_owned()).collect()))
            .collect();
        dependency_order(&owned)
    }

    #[test]
    fn dependencies_come_first_and_ties_keep_the_given_order() {
        assert_eq!(
            order(&[
                ("a", &["b"]),
                ("b", &[]),
                ("c", &["a"]),
                ("d", &[]),
                ("e", &["c"])
            ]),
            ["b", "a", "c", "d", "e"]
        );
    }

    #[test]
    fn unknown_names_hold_nothing_and_a_cycle_comes_last() {
        assert_eq!(
            order(&[("a", &["x"]), ("b", &["c"]), ("c", &["b"]), ("d", &[])]),
            ["a", "d", "b", "c"]
        );
    }

    /// 10,000 resources, each depending on the one before it (written last first): the order
    /// is the chain, at once (the engine recomputed a quadratic pass after every event).
    #[test]
    fn a_long_chain_is_ordered() {
        let names: Vec<String> = (0..10_000).map(|i| format!("r{i}")).collect();
        let nodes: Vec<(&str, Vec<String>)> = (0..10_000)
            .rev()
            .map(|i| {
                (
                    names[i].as_str(),
                    if i == 0 {
                        Vec::new()
                    } else {
                        vec![names[i - 1].clone()]
                    },
                )
            })
            .collect();
        assert_eq!(dependency_order(&nodes), names);
    }
}
