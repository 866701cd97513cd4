//! The price table: derived cost for model calls that report none.

use std::sync::OnceLock;

use serde::Deserialize;

/// The bundled table's text.
pub const BUNDLED: &str = include_str!("prices.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub provider: String,
    pub model: String,
    pub input: f64,
    pub output: f64,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub reasoning: Option<f64>,
}

/// Prices per million tokens, by provider and model prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub version: String,
    pub currency: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelPrice>,
}

/// Token counts of one call.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

impl PriceTable {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// This table with `other`'s entries taking precedence (same provider and model replaced).
    pub fn overlaid(mut self, other: PriceTable) -> Self {
        self.models.retain(|m| {
            !other
                .models
                .iter()
                .any(|o| o.provider == m.provider && o.model == m.model)
        });
        self.models.extend(other.models);
        self.version = format!("{}+{}", self.version, other.version);
        self
    }

    /// The entry for `model` of `provider`: the longest matching model prefix.
    pub fn find(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        self.models
            .iter()
            .filter(|m| m.provider == provider && model.starts_with(&m.model))
            .max_by_key(|m| m.model.len())
    }

    /// The provider whose priced model `model` starts with (the longest prefix), whatever its
    /// version suffix.
    pub fn provider_of(&self, model: &str) -> Option<&str> {
        let model = model.to_ascii_lowercase();
        self.models
            .iter()
            .filter(|m| model.starts_with(&m.model.to_ascii_lowercase()))
            .max_by_key(|m| m.model.len())
            .map(|m| m.provider.as_str())
    }

    /// Cost of `usage`: cached input is priced as cache, the rest of the input as input;
    /// reasoning tokens are part of the output count, as providers report them.
    pub fn cost(&self, price: &ModelPrice, usage: Usage) -> f64 {
        let fresh = (usage.input - usage.cache_read - usage.cache_write).max(0) as f64;
        let per = 1_000_000.0;
        (fresh * price.input
            + usage.cache_read as f64 * price.cache_read.unwrap_or(price.input)
            + usage.cache_write as f64 * price.cache_write.unwrap_or(price.input)
            + usage.output as f64 * price.output)
            / per
    }
}

static PRICES: OnceLock<PriceTable> = OnceLock::new();

/// Installs the price table (the bundled one overlaid with a user's file) before any span is
/// encoded. Later calls have no effect.
pub fn install(user: Option<&str>) -> Result<(), String> {
    let bundled = PriceTable::parse(BUNDLED).map_err(|e| format!("bundled prices: {e}"))?;
    let table = match user {
        Some(text) => bundled.overlaid(PriceTable::parse(text)?),
        None => bundled,
    };
    let _ = PRICES.set(table);
    Ok(())
}

/// The price table in force.
pub fn prices() -> &'static PriceTable {
    PRICES.get_or_init(|| PriceTable::parse(BUNDLED).expect("the bundled prices.toml is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_cache_pricing() {
        let t = PriceTable::parse(BUNDLED).unwrap();
        let mini = t.find("openai", "gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(mini.model, "gpt-4o-mini");
        assert_eq!(
            t.find("openai", "gpt-4o-2024-08-06").unwrap().model,
            "gpt-4o"
        );
        assert!(t.find("openai", "unknown-model").is_none());
        assert_eq!(t.provider_of("gpt-4o-mini-2024-07-18"), Some("openai"));
        assert_eq!(t.provider_of("claude-sonnet-4-5"), Some("anthropic"));
        assert_eq!(t.provider_of("my-own-model"), None);
        let usage = Usage {
            input: 120,
            output: 30,
            cache_read: 80,
            ..Default::default()
        };
        let expected = (40.0 * 0.15 + 80.0 * 0.075 + 30.0 * 0.60) / 1e6;
        assert!((t.cost(mini, usage) - expected).abs() < 1e-15);
        let user = PriceTable::parse(
            "version = \"mine\"\ncurrency = \"USD\"\n[[model]]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\ninput = 1.0\noutput = 1.0\n",
        )
        .unwrap();
        let both = t.overlaid(user);
        assert_eq!(both.find("openai", "gpt-4o-mini").unwrap().input, 1.0);
        assert!(both.version.ends_with("+mine"));
        assert!(PriceTable::parse("version = 1").is_err());
    }
}
