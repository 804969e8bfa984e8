from django.db import connections


def release_connections() -> None:
    """Hand this thread's database connections back (closed, or to the pool).

    Django keeps a request's connection until the request ends; a streaming
    request lasts as long as the answer, so the stream lets go of it early."""
    for connection in connections.all(initialized_only=True):
        connection.close()
