"""Four eyes (maker–checker): changes that move or redirect money wait for a second admin.

A change is proposed by one admin (:func:`shop.approvals.services.propose`), shown to
the others with its masked before → after, and takes effect only when a *different*
admin, enrolled in two-factor login, approves it — in one transaction with its audit
record. Proposals can be rejected with a reason and expire.
"""
