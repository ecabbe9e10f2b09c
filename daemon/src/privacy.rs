//! Masks for owner contact data in logs and CLI output (PIPL: show no more than needed).

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
