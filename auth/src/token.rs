//! The bearer token: `cairn_<id>_<secret>`, 16 hex digits of id (not secret: the key of its
//! entry in the token file) and 64 hex digits (256 bits) of secret, of which the file keeps only
//! an argon2id hash.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

const PREFIX: &str = "cairn_";
const ID_HEX: usize = 16;
const SECRET_HEX: usize = 64;

/// A token as presented or as just created. Its `Debug` never shows the secret, so that no log
/// line can carry one.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new random token.
    pub fn generate() -> Self {
        let mut id = [0u8; ID_HEX / 2];
        let mut secret = [0u8; SECRET_HEX / 2];
        OsRng.fill_bytes(&mut id);
        OsRng.fill_bytes(&mut secret);
        Self(format!(
            "{PREFIX}{}_{}",
            hex::encode(id),
            hex::encode(secret)
        ))
    }

    /// A presented token, if it has the shape of one.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.strip_prefix(PREFIX)?.split_once('_')?;
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        (hex(id, ID_HEX) && hex(secret, SECRET_HEX)).then(|| Self(text.to_owned()))
    }

    /// The id: which entry of the file to check the token against.
    pub fn id(&self) -> &str {
        &self.0[PREFIX.len()..PREFIX.len() + ID_HEX]
    }

    /// The whole token, to print once when it is created.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The key of the cache of verified tokens: a fast hash of the whole token.
    pub(crate) fn digest(&self) -> [u8; 32] {
        *blake3::hash(self.0.as_bytes()).as_bytes()
    }

    /// The argon2id hash the file keeps, in the PHC string format (salt and parameters inside).
    pub fn hash(&self) -> Result<String, String> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| format!("hashing the token: {e}"))
    }

    /// Whether `hash` is the hash of this token (argon2's comparison is constant-time).
    /// CPU-heavy: run it off the IO threads.
    pub fn verify(&self, hash: &str) -> bool {
        PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(self.0.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({PREFIX}{}_<redacted>)", self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_hash_verify_and_never_show_their_secret() {
        let token = Token::generate();
        let text = token.reveal().to_owned();
        assert_eq!(Token::parse(&text), Some(token.clone()));
        assert_eq!(token.id().len(), 16);
        let debug = format!("{token:?}");
        assert!(!debug.contains(&text[23..]), "{debug}");
        assert!(debug.contains(token.id()));
        let hash = token.hash().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&text[23..]));
        assert!(token.verify(&hash));
        assert!(!Token::generate().verify(&hash));
        assert!(!token.verify("not a hash"));
        for bad in [
            "",
            "cairn_",
            &text[..text.len() - 1],
            &text.to_uppercase(),
            &text.replacen("cairn_", "cairm_", 1),
            &format!("{text}0"),
        ] {
            assert_eq!(Token::parse(bad), None, "{bad:?}");
        }
    }
}
