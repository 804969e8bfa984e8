"""`manage.py runserver` served by daphne, so answers stream in development.

In INSTALLED_APPS in daphne's place, before staticfiles (whose `runserver`
the first app's command replaces): daphne's own app imports daphne's server
and Twisted at start-up, ~20 MiB in every process, uvicorn's included. This
app imports them only when `runserver` runs.
"""
