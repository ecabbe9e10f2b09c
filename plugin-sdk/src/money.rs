//! [`Money`]: an amount in fen (分), the unit bills and payments are stored in.
//!
//! Integer fen, never floating yuan: 0.1 + 0.2 yuan must print `¥0.30` on a bill an owner will
//! compare with their bank statement. Formatting follows how a Chinese bill prints amounts:
//! `¥1,234.50`, or `1,234.50` for templates that print their own unit (`{{ total }} 元`).

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

/// An amount of money in fen. `Display` prints it as yuan: `¥1,234.50`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money {
    fen: i64,
}

impl Money {
    /// Nothing owed.
    pub const ZERO: Money = Money { fen: 0 };

    /// `fen` fen: `Money::fen(35_000)` is ¥350.00.
    pub const fn fen(fen: i64) -> Money {
        Money { fen }
    }

    /// Whole yuan: `Money::yuan(350)` is ¥350.00.
    pub const fn yuan(yuan: i64) -> Money {
        Money {
            fen: yuan.saturating_mul(100),
        }
    }

    /// The amount in fen, for arithmetic and for a `_fen` template variable.
    pub const fn as_fen(self) -> i64 {
        self.fen
    }

    pub const fn is_zero(self) -> bool {
        self.fen == 0
    }

    /// Without the currency sign, for templates that print their own unit: `1,234.50`.
    pub fn amount(self) -> String {
        let mut out = String::new();
        self.write(&mut out, false).unwrap_or_default();
        out
    }

    fn write(self, out: &mut impl fmt::Write, sign: bool) -> fmt::Result {
        if self.fen < 0 {
            out.write_char('-')?;
        }
        if sign {
            out.write_char('¥')?;
        }
        let fen = self.fen.unsigned_abs();
        let whole = (fen / 100).to_string();
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                out.write_char(',')?;
            }
            out.write_char(c)?;
        }
        write!(out, ".{:02}", fen % 100)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money::fen(self.fen.saturating_add(rhs.fen))
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money::fen(self.fen.saturating_sub(rhs.fen))
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        *self = *self - rhs;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money::fen(self.fen.saturating_neg())
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_a_bill_does_with_exact_fen() {
        assert_eq!(Money::fen(123_450).to_string(), "¥1,234.50");
        assert_eq!(Money::fen(5).to_string(), "¥0.05");
        assert_eq!(Money::yuan(1_000_000).to_string(), "¥1,000,000.00");
        assert_eq!(Money::fen(-35_000).to_string(), "-¥350.00");
        assert_eq!(Money::fen(123_450).amount(), "1,234.50");
        assert_eq!(Money::fen(-5).amount(), "-0.05");
    }

    #[test]
    fn adds_up_in_fen() {
        let total: Money = [Money::fen(10), Money::fen(20)].into_iter().sum();
        assert_eq!(total, Money::fen(30));
        assert_eq!((total - Money::yuan(1)).as_fen(), -70);
        assert_eq!(Money::fen(i64::MAX) + Money::fen(1), Money::fen(i64::MAX));
    }
}
