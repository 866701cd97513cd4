//! Built-in rules usable by name (`preset = "email"`), so that common secrets need no regex.

use super::rules::Check;

/// A named set of key globs and value regexes.
pub struct Preset {
    pub name: &'static str,
    pub keys: &'static [&'static str],
    pub values: &'static [&'static str],
    pub check: Option<Check>,
}

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "email",
        keys: &[],
        values: &[r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"],
        check: None,
    },
    Preset {
        name: "credit_card",
        keys: &[],
        // 13 to 19 digits, optionally grouped by spaces or dashes; kept only when Luhn-valid.
        values: &[r"\b(?:\d[ -]?){12,18}\d\b"],
        check: Some(Check::Luhn),
    },
    Preset {
        name: "openai_key",
        keys: &[],
        values: &[r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"],
        check: None,
    },
    Preset {
        name: "aws_access_key",
        keys: &[],
        values: &[r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"],
        check: None,
    },
    Preset {
        name: "github_token",
        keys: &[],
        values: &[r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"],
        check: None,
    },
    Preset {
        name: "jwt",
        keys: &[],
        values: &[r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"],
        check: None,
    },
    Preset {
        name: "bearer_token",
        keys: &[],
        values: &[r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}=*"],
        check: None,
    },
    Preset {
        name: "secret_keys",
        keys: &[
            "*api_key",
            "*api-key",
            "*apikey",
            "*password",
            "*passwd",
            "*secret",
            "*access_token",
            "*refresh_token",
            "*.token",
            "http.request.header.authorization",
            "http.request.header.cookie",
            "http.request.header.x-api-key",
            "http.response.header.set-cookie",
        ],
        values: &[],
        check: None,
    },
];

/// The preset called `name`.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Names of every preset.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}
