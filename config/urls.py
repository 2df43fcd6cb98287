from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from .auth import TokenObtainView, TokenRefreshView
from .errors import json_404, store_404

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^api/auth/token/?$", TokenObtainView.as_view(), name="token_obtain_pair"),
    re_path(r"^api/auth/token/refresh/?$", TokenRefreshView.as_view(), name="token_refresh"),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^api/redoc/?$", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api/", include("projects.urls")),
    path("api/", include("sandboxes.urls")),
    path("api/", include("agents.urls")),
    path("api/", include("threads.urls")),
    path("api/", include("receipts.urls")),
    re_path(r"^api/store(/.*)?$", store_404),
    re_path(r"^api/.*$", json_404),
]

handler404 = "config.errors.json_404"
handler500 = "config.errors.json_500"
