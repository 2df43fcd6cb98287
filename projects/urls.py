from config.routers import Router

from .api import AccountViewSet, ProjectViewSet

router = Router()
router.register("accounts", AccountViewSet, basename="account")
router.register("projects", ProjectViewSet, basename="project")
urlpatterns = router.urls
