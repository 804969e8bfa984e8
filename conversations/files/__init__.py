"""Files in conversations: their kinds, their storage, uploads, and what the model is sent."""
