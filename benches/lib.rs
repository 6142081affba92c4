//! Shared nothing yet; each bench file is one stage (see docs/performance.md).
