from config.routers import Router

from .api.threads import ThreadViewSet

router = Router()
router.register("threads", ThreadViewSet, basename="thread")
urlpatterns = router.urls
