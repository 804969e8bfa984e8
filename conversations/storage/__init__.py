"""How the app reaches its database off the event loop, and the few
statements every message runs.

    threads.py   run_db: a few long-lived threads that keep their connections
    calls.py     a call on one of them, broken off when the database hangs
    rows.py      the turn INSERT, built once per database instead of per row
    sql.py       the hot path's other statements, written out
    queue_claims.py  a queued message claimed by the transaction that saves it
"""
