"""Heliograph gateway: the federation hop (store-and-forward, routing policy, audit log)."""
