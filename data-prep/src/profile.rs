//! The plain-text user profile shared by every stage: statistical profiles, the synthetic
//! world's ground truth, defect injection and the rule chooser all read and write this form.
//!
//! ```text
//! Demographics: 24-year-old male, technician.
//! Likes: Comedy, Drama.
//! Dislikes: Horror.
//! Favourite eras: 1990s.
//! Taste: mainstream (mostly popular titles).
//! Average rating: 3.6 of 5.
//! ```

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub demographics: Option<String>,
    pub likes: Vec<String>,
    pub dislikes: Vec<String>,
    pub eras: Vec<String>,
    pub taste: Option<String>,
    pub mean_rating: Option<f32>,
}

const LIKES: &str = "Likes: ";
const DISLIKES: &str = "Dislikes: ";

impl Profile {
    pub fn render(&self) -> String {
        let mut lines = Vec::new();
        if let Some(d) = &self.demographics {
            lines.push(format!("Demographics: {d}."));
        }
        let list = |v: &[String]| if v.is_empty() { "nothing in particular".to_owned() } else { v.join(", ") };
        lines.push(format!("{LIKES}{}.", list(&self.likes)));
        lines.push(format!("{DISLIKES}{}.", list(&self.dislikes)));
        if !self.eras.is_empty() {
            lines.push(format!("Favourite eras: {}.", self.eras.join(", ")));
        }
        if let Some(t) = &self.taste {
            lines.push(format!("Taste: {t}."));
        }
        if let Some(r) = self.mean_rating {
            lines.push(format!("Average rating: {r:.1} of 5."));
        }
        lines.join("\n")
    }

    /// The stated likes and dislikes of a profile text (other lines are ignored), so that a
    /// rewritten profile can be scored the same way as a generated one.
    pub fn stated_preferences(text: &str) -> (Vec<String>, Vec<String>) {
        let mut likes = Vec::new();
        let mut dislikes = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let (target, rest) = if let Some(rest) = line.strip_prefix(LIKES) {
                (&mut likes, rest)
            } else if let Some(rest) = line.strip_prefix(DISLIKES) {
                (&mut dislikes, rest)
            } else {
                continue;
            };
            let rest = rest.trim_end_matches('.');
            if rest != "nothing in particular" {
                target.extend(rest.split(", ").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
            }
        }
        (likes, dislikes)
    }

    /// A one-paragraph summary that names categories and tendencies but never a title.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match &self.demographics {
            Some(d) => parts.push(format!("A user ({d})")),
            None => parts.push("A user".to_owned()),
        }
        if !self.likes.is_empty() {
            parts.push(format!("who mostly enjoys {}", lower_list(&self.likes)));
        }
        let mut s = parts.join(" ");
        if !self.dislikes.is_empty() {
            s.push_str(&format!(", tends to avoid {}", lower_list(&self.dislikes)));
        }
        if !self.eras.is_empty() {
            s.push_str(&format!(", favours titles from the {}", self.eras.join(" and ")));
        }
        if let Some(t) = &self.taste {
            let kind = t.split(" (").next().unwrap_or(t);
            s.push_str(&format!(", and has {kind} taste"));
        }
        s.push('.');
        s
    }
}

fn lower_list(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_parse_round_trips() {
        let p = Profile {
            demographics: Some("24-year-old male, technician".into()),
            likes: vec!["Comedy".into(), "Drama".into()],
            dislikes: vec!["Horror".into()],
            eras: vec!["1990s".into()],
            taste: Some("mainstream".into()),
            mean_rating: Some(3.62),
        };
        let text = p.render();
        assert!(text.contains("Likes: Comedy, Drama.\nDislikes: Horror."), "{text}");
        assert_eq!(Profile::stated_preferences(&text), (p.likes.clone(), p.dislikes.clone()));
        let empty = Profile::default().render();
        assert_eq!(Profile::stated_preferences(&empty), (vec![], vec![]));
        assert!(p.summary().contains("Comedy and Drama"), "{}", p.summary());
    }
}
