from django.urls import re_path

from config.routers import Router

from .api.search import ThreadSearchView
from .api.threads import ThreadViewSet

router = Router()
router.register("threads", ThreadViewSet, basename="thread")
urlpatterns = [
    re_path(r"^threads/search/?$", ThreadSearchView.as_view(), name="thread-search"),
    *router.urls,
]
