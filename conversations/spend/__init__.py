"""What answers cost and what each user may spend and send.

    pricing.py  a call's cost from its usage and the model's prices (settings, then the admin's)
    ledger.py   the spend ledger: one Spend row per model call (answers, the classifier, memory)
    budgets.py  per-user and per-key spend and token budgets, read from the ledger and the reservations
    reservations.py  the most a model call may cost, held against the budgets until it is settled
    holds.py    an answer's reservation, from its first model call to its save (renewed while it runs)
    limits.py   messages per minute and streams at once, per user (in Redis when it is set)

Which model answers stays beside the providers that read it: catalogue.py and
routing.py (routing asks a provider, and the providers read the catalogue).
"""
