//! Masks for owner contact data in logs and CLI output, and the permissions of files that hold
//! it (PIPL: show no more than needed, to no more people than needed).
//!
//! The database, the file outbox (mail and SMS written to disk) and backups carry owners' names,
//! phone numbers and bills: they are created readable by the daemon's user only (files 0600,
//! folders 0700), whatever the umask of the shell or service that started it.

use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700 (existing folders keep theirs: an
/// administrator may have chosen otherwise on purpose).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Open options whose newly created file gets mode 0600; add `create`, `append`, ... as needed.
pub fn private_file() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.mode(0o600);
    options
}

/// `13812341234` → `138****1234`; anything too short to mask meaningfully is fully hidden.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().collect();
    if digits.len() < 7 {
        return "*".repeat(digits.len().max(4));
    }
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// `zhang.wei@example.com` → `z***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_and_email_keep_only_what_identifies_nobody() {
        assert_eq!(mask_phone("13812341234"), "138****1234");
        assert_eq!(mask_phone("+8613812341234"), "+86****1234");
        assert_eq!(mask_phone("123"), "****");
        assert_eq!(mask_email("zhang.wei@example.com"), "z***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
