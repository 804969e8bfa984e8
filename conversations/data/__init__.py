"""What users own and what operators must do with it (docs/data.md): the
rows, bytes and Redis keys that belong to conversations, erased together
(erasing.py); a user's data erased on request, answers stopped first
(erase.py); everything a user owns as one streamed zip (export.py); old
conversations swept by the worker (retention.py); and the audit record of
each of these (audit.py, models.DataEvent)."""
