//! Colour themes: TOML files, the built-in ones embedded at build time, user ones from the
//! config folder's `themes/` (a user theme with a built-in's name replaces it).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::Color;
use serde::Deserialize;

const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub background: Color,
    pub foreground: Color,
    pub muted: Color,
    pub border: Color,
    pub accent: Color,
    pub user: Color,
    pub model: Color,
    pub warning: Color,
    pub selection: Color,
    /// Colours for token probabilities, least to most likely (five steps).
    pub probability: [Color; 5],
}

/// Probability bands of the colour scale: below 10%, 30%, 50%, 80%, and the rest.
pub const PROBABILITY_BANDS: [f32; 4] = [0.1, 0.3, 0.5, 0.8];

impl Theme {
    /// The colour for a token drawn with probability `p`.
    pub fn probability_color(&self, p: f32) -> Color {
        let band = PROBABILITY_BANDS
            .iter()
            .take_while(|&&edge| p >= edge)
            .count();
        self.probability[band]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: String,
    background: String,
    foreground: String,
    muted: String,
    border: String,
    accent: String,
    user: String,
    model: String,
    warning: String,
    selection: String,
    probability: Vec<String>,
}

impl Theme {
    /// Parses a theme file; the error names the key and value at fault.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: ThemeFile =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))?;
        let color = |key: &str, value: &str| {
            Color::from_str(value).map_err(|_| format!("`{key}` = \"{value}\" is not a colour"))
        };
        Ok(Self {
            background: color("background", &file.background)?,
            foreground: color("foreground", &file.foreground)?,
            muted: color("muted", &file.muted)?,
            border: color("border", &file.border)?,
            accent: color("accent", &file.accent)?,
            user: color("user", &file.user)?,
            model: color("model", &file.model)?,
            warning: color("warning", &file.warning)?,
            selection: color("selection", &file.selection)?,
            probability: {
                let colors = file
                    .probability
                    .iter()
                    .map(|c| color("probability", c))
                    .collect::<Result<Vec<_>, _>>()?;
                colors.try_into().map_err(|v: Vec<Color>| {
                    format!("`probability` needs 5 colours, got {}", v.len())
                })?
            },
            name: file.name,
        })
    }

    pub fn default_theme() -> Self {
        Self::parse(BUILT_IN[0].1).expect("the built-in dark theme parses")
    }
}

/// All themes by name, and a problem report for each user theme that did not load.
pub fn load_themes(user_dir: Option<&Path>) -> (BTreeMap<String, Theme>, Vec<String>) {
    let mut themes = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, text) in BUILT_IN {
        match Theme::parse(text) {
            Ok(theme) => {
                themes.insert(name.to_string(), theme);
            }
            Err(e) => problems.push(format!("built-in theme {name}: {e}")),
        }
    }
    let Some(dir) = user_dir else {
        return (themes, problems);
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (themes, problems);
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| Theme::parse(&t));
        match parsed {
            Ok(theme) => {
                themes.insert(theme.name.clone(), theme);
            }
            Err(e) => problems.push(format!("theme {}: {e}", path.display())),
        }
    }
    (themes, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_loads() {
        let (themes, problems) = load_themes(None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            themes.keys().collect::<Vec<_>>(),
            vec!["dark", "high-contrast", "light"]
        );
    }

    #[test]
    fn user_themes_add_and_override_and_bad_ones_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let dark = BUILT_IN[0].1.replace("#1e1e2e", "#000001");
        std::fs::write(
            dir.path().join("mine.toml"),
            dark.replace("name = \"dark\"", "name = \"mine\""),
        )
        .unwrap();
        std::fs::write(dir.path().join("dark.toml"), &dark).unwrap();
        std::fs::write(
            dir.path().join("broken.toml"),
            dark.replace("#cdd6f4", "not-a-colour"),
        )
        .unwrap();
        let (themes, problems) = load_themes(Some(dir.path()));
        assert!(themes.contains_key("mine"));
        assert_eq!(themes["dark"].background, Color::Rgb(0, 0, 1));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("broken.toml") && problems[0].contains("foreground"),
            "{problems:?}"
        );
    }
}
