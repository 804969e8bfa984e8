"""The chat page end to end: Debian's Chromium, headless, driven by Playwright,
against the app under uvicorn and the fake upstream, one module per area of
the page. `conftest.py` launches the browser and signs uma in; `helpers.py`
holds what the modules share.

Playwright never downloads a browser here: it launches /usr/bin/chromium
(`make test` installs Debian's package when it is missing).
"""
