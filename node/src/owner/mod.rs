//! The owner's policy: which commissioners the owner trusts and for what ([`trust`],
//! [`defaults`]), which rule accepts or declines a request ([`consent`]), the privacy budget
//! each commissioner has spent ([`budget`]), and the queries as
//! they run on this node's stored records ([`query`]). The daemon's side of it (asking the
//! owner, the audit) is in `daemon`; the owner's decisions are kept in `store`.

pub mod budget;
pub mod consent;
pub mod defaults;
pub mod query;
pub mod trust;
