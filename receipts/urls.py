from django.urls import re_path

from .api import AccountDeletionsView

urlpatterns = [
    re_path(r"^accounts/(?P<account_id>[^/]+)/deletions/?$", AccountDeletionsView.as_view(),
            name="account-deletions"),
]
