//! The profile-driven rule chooser: a deterministic scorer of items against a profile's stated
//! likes and dislikes. It produces the discrepancy cases of the defect samples and serves as
//! the simplest simulator and diagnoser baseline later.

use crate::tables::Item;

/// Scores items against stated likes (+1 per matching category) and dislikes (−1 each).
#[derive(Debug, Clone, Default)]
pub struct RuleChooser {
    pub likes: Vec<String>,
    pub dislikes: Vec<String>,
}

impl RuleChooser {
    pub fn from_profile_text(text: &str) -> Self {
        let (likes, dislikes) = crate::profile::Profile::stated_preferences(text);
        Self { likes, dislikes }
    }

    pub fn score(&self, item: &Item) -> i32 {
        item.categories.iter().map(|c| i32::from(self.likes.contains(c)) - i32::from(self.dislikes.contains(c))).sum()
    }

    /// The index of the best item; ties go to the more popular item, then the earlier one.
    pub fn choose(&self, items: &[&Item]) -> usize {
        let mut best = 0;
        for (i, item) in items.iter().enumerate().skip(1) {
            let (s, b) = (self.score(item), self.score(items[best]));
            if s > b || (s == b && item.popularity > items[best].popularity) {
                best = i;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(cats: &[&str], popularity: u32) -> Item {
        Item { categories: cats.iter().map(|c| c.to_string()).collect(), popularity, ..Item::default() }
    }

    #[test]
    fn likes_win_dislikes_lose() {
        let chooser = RuleChooser::from_profile_text("Likes: Comedy, Drama.\nDislikes: Horror.");
        let (a, b, c) = (item(&["Horror"], 100), item(&["Comedy", "Drama"], 1), item(&["Comedy"], 50));
        assert_eq!(chooser.score(&a), -1);
        assert_eq!(chooser.score(&b), 2);
        assert_eq!(chooser.choose(&[&a, &b, &c]), 1);
        let tie = [&item(&["War"], 5), &item(&["Western"], 9)];
        assert_eq!(chooser.choose(&tie), 1);
    }
}
