"""Logging in: token endpoints, their throttling, and revoking a user's tokens.

- `POST /api/auth/token` is throttled per client address and per username (DRF
  throttling on the cache: `LOGIN_RATE_PER_IP`, `LOGIN_RATE_PER_USERNAME`); beyond
  the rate a 429 with `Retry-After`. A cache that is down never blocks a login.
- Refresh tokens rotate: `POST /api/auth/token/refresh` returns a new refresh token
  and blacklists the one it was given (simplejwt's token blacklist).
- Changing a user's password or deactivating them revokes every token they hold:
  their refresh tokens are blacklisted, and access tokens carry a hash of the
  password (`CHECK_REVOKE_TOKEN`) and are refused for inactive users.
"""

import hashlib
import logging

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_simplejwt import views
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from .schema import errors

logger = logging.getLogger(__name__)


class _CacheSafeThrottle(SimpleRateThrottle):
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except APIException:
            raise  # the request's own fault (a body that does not parse): its 4xx, not a cache outage
        except Exception as exc:  # the cache is down: let the login through, say so
            logger.warning("Login throttle skipped, cache unavailable: %s", exc)
            return True


class LoginIPThrottle(_CacheSafeThrottle):
    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(_CacheSafeThrottle):
    scope = "login_username"

    def get_cache_key(self, request, view):
        data = request.data if isinstance(request.data, dict) else {}
        username = data.get("username")
        if not isinstance(username, str) or not username:
            return None
        ident = hashlib.sha256(username.strip().lower().encode("utf-8", "replace")).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenObtainView(views.TokenObtainPairView):
    throttle_classes = [LoginIPThrottle, LoginUsernameThrottle]

    @extend_schema(request=TokenObtainPairSerializer, responses={
        200: inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()}),
        **errors(401)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRefreshView(views.TokenRefreshView):
    @extend_schema(request=TokenRefreshSerializer, responses={
        200: inline_serializer("TokenRefreshed", {
            "access": serializers.CharField(),
            "refresh": serializers.CharField(help_text="A new refresh token; the one sent is now revoked."),
        }),
        **errors(401)})
    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except get_user_model().DoesNotExist:  # the token's user was deleted
            raise AuthenticationFailed("No active account found for the given token.")


def revoke_tokens(user) -> int:
    """Blacklist every outstanding refresh token of the user; returns how many."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    outstanding = list(
        OutstandingToken.objects.filter(user_id=user.pk).exclude(blacklistedtoken__isnull=False).values_list("pk", flat=True)
    )
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token_id=pk) for pk in outstanding], ignore_conflicts=True)
    return len(outstanding)
