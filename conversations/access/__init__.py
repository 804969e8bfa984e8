"""Who may come in: API keys, session cookies and passwords, each door throttled.

api_keys.py     keys made, hashed, and found by their prefix
credentials.py  who a key or session cookie names, for the views and the body guard
throttle.py     failed logins and keys, counted per account and per address
logins.py       every login door throttled: `ThrottledModelBackend`, the failed-login signal
"""
