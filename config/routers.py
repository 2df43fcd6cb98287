from rest_framework.routers import SimpleRouter


class Router(SimpleRouter):
    """Paths without a trailing slash, as LangGraph's SDK calls them; with one works too."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        # Any segment is routed to the view, which answers a malformed id with a 422.
        if not hasattr(viewset, "lookup_value_regex"):
            viewset.lookup_value_regex = "[^/]+"
        return super().get_lookup_regex(viewset, lookup_prefix)
