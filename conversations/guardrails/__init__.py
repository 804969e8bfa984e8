"""Guardrails: operator-supplied classes, named in CHATSTREAM_GUARDRAILS, that
look at a message before its model call (`before`), at its answer's output
as it streams (`on_output`) and at the saved turn (`after`).

    loading.py    the classes the settings name (the built-in redaction last), by hook
    hooks.py      one hook run: async on the loop, sync on a thread, within its time, failures logged
    prompt.py     `before`: refuse the message, or rewrite its prompt
    output.py     `on_output`: mask or stop the answer as it streams (the relay's OutputGuard)
    review.py     `after`: flag the saved turn for the admin's review queue
    redaction.py  the built-in guardrail that CHATSTREAM_REDACT turns on
"""
