"""The life of one answer, from the model's first byte to the saved turn.

    relay.py      the generation task: calls the model, retries, cancels, saves once
    readers.py    the answer's text and everyone reading it (fan-out, backpressure)
    figures.py    what the answer measured: time to first token, gaps, cancel latency
    events.py     the events a reader gets, and how the first and last are built
    answer.py     what an answer starts from and how it ended, as saved
    presence.py   who reads the answer, and what the last reader's going does
    ending.py     the answer its turn is saved from, and the final event
    telemetry.py  one log line, metric and span event per stream event that matters
    text.py, watchdog.py, retries.py, redaction.py    parts of the relay
    registry.py, shutdown.py, background.py           this process's answers
    ends.py       who is told when an answer's turn is saved (the queue's next message)
    spend_hold.py what the relay asks of the answer's reservation against the budgets

Nothing here touches the database: the relay is handed the function that
saves its turn (services.py), so the stream's life reads apart from storage.
"""
