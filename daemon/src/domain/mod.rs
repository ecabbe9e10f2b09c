//! The service desk's data: the typed values from `wuye-core` (households, owners, bills,
//! tickets, surveys, events), the store's [`DomainError`], and the two pieces that need the
//! layers above the store: [`import`] (CSV files exported by billing and desk systems) and
//! [`directory`] (owners' contacts as delivery reads them).

pub use wuye_core::domain::*;
pub use wuye_store::domain::DomainError;

pub mod directory;
pub mod import;
