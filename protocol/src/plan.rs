//! Tree plan.
