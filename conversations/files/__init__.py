"""Files in a conversation: uploaded to Django's storage, checked for what
they really are, and given to the models that can read them. (Nothing is
imported here: pdf_child.py's process imports this package, without Django.)"""
