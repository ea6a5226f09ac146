"""The staff audit log: who changed what, when, from where — append-only and hash-chained.

Every transaction a staff member's request commits carries exactly one record, written in
that transaction (``shop.audit.log``); services that move money name the ledger postings
they cause, so ``flask audit verify`` can tie each payout, refund and reversal to the
person who made it. The log never stores PII in the clear: values are masked as they are
captured.
"""
