"""What happens to a message sent while an answer streams in its
conversation ("while_answering" in its body, else CHATSTREAM_WHILE_ANSWERING):

- `parallel` (the default): answered at once, beside that answer;
- `queue`: saved as a QueuedMessage (202) and answered when the answers in
  progress there have ended (starting.py), followed meanwhile at
  GET api/turns/<answer id>/events (following.py);
- `interrupt`: the answers in progress are stopped (`cancelled`), then it is answered;
- `reject`: 409 `answer_in_progress`, nothing saved.

choice.py applies the choice, rows.py holds the queue's database work
(the claim that starts a message once is storage/queue_claims.py, which
answering uses); stream/ends.py carries "an answer ended" to starting.py.
"""

PARALLEL, QUEUE, INTERRUPT, REJECT = "parallel", "queue", "interrupt", "reject"
WHILE_ANSWERING = (PARALLEL, QUEUE, INTERRUPT, REJECT)
