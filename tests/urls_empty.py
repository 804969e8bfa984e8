"""A URLconf without the app's URLs."""

urlpatterns: list = []
