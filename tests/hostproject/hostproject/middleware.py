def stamp(get_response):
    """The project's own middleware (sync, as most are): it marks every response."""

    def middleware(request):
        response = get_response(request)
        response["X-Host-Project"] = "yes"
        return response

    return middleware
