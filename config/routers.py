from rest_framework.routers import SimpleRouter


class Router(SimpleRouter):
    """Paths without a trailing slash, as LangGraph's SDK calls them; with one works too."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
