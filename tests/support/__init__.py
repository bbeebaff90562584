"""Test helpers: seeded randomness and a small federation built in memory."""
