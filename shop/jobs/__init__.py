"""Periodic work that runs once across every host: reconcile, expiry, payouts, boards."""
