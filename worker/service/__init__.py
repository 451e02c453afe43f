"""The running service: one connected session after another, each consuming in batches,
deciding through `processing`, publishing with confirms, acknowledging after the confirms."""
