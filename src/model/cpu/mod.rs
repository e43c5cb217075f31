//! The CPU backend: the decode step and the prompt pass on host slices.

mod attention;
pub(super) mod decode;
pub(super) mod prefill;
