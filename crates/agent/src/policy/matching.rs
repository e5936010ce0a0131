//! Maximum bipartite matching of approval slots to people (Kuhn's augmenting
//! paths), so a person in two required groups fills at most one slot and the
//! assignment satisfies as many slots as possible.

/// For each slot, the person assigned to it. `candidates[slot]` lists the
/// people (indices below `people`) who may fill that slot.
///
/// Slots are tried in order and an augmenting path never unmatches a slot,
/// so the earlier slots (the up-front rules) get a maximum matching among
/// themselves before later ones (retrospective rules) are considered, and
/// the result is still a maximum matching overall.
pub(super) fn assign(candidates: &[Vec<usize>], people: usize) -> Vec<Option<usize>> {
    let mut holder: Vec<Option<usize>> = vec![None; people];
    for slot in 0..candidates.len() {
        let mut visited = vec![false; people];
        augment(slot, candidates, &mut holder, &mut visited);
    }
    let mut assigned = vec![None; candidates.len()];
    for (person, slot) in holder.into_iter().enumerate() {
        if let Some(slot) = slot {
            assigned[slot] = Some(person);
        }
    }
    assigned
}

/// Finds a person for `slot`, moving earlier holders to other slots if that
/// frees someone. Depth is bounded by the number of people.
fn augment(
    slot: usize,
    candidates: &[Vec<usize>],
    holder: &mut [Option<usize>],
    visited: &mut [bool],
) -> bool {
    for &person in &candidates[slot] {
        if visited[person] {
            continue;
        }
        visited[person] = true;
        if holder[person].is_none_or(|other| augment(other, candidates, holder, visited)) {
            holder[person] = Some(slot);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(assignment: &[Option<usize>]) -> usize {
        assignment.iter().flatten().count()
    }

    #[test]
    fn greedy_would_fail_but_matching_fills_both_slots() {
        // Person 0 may fill either slot, person 1 only slot 0: greedy gives
        // slot 0 to person 0 and leaves slot 1 empty.
        let assignment = assign(&[vec![0, 1], vec![0]], 2);
        assert_eq!(assignment, vec![Some(1), Some(0)]);
    }

    #[test]
    fn one_person_fills_one_slot() {
        assert_eq!(filled(&assign(&[vec![0], vec![0], vec![0]], 1)), 1);
    }

    #[test]
    fn earlier_slots_keep_their_match() {
        // Slot 0 (up front) and slot 1 (retrospective) compete for person 0.
        assert_eq!(assign(&[vec![0], vec![0]], 1), vec![Some(0), None]);
    }

    #[test]
    fn no_slots_or_no_people() {
        assert!(assign(&[], 3).is_empty());
        assert_eq!(assign(&[vec![]], 0), vec![None]);
    }
}
