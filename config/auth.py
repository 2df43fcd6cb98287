"""Token endpoints: obtain a pair with a username and password, refresh an access token."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework_simplejwt import views
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer

from .schema import errors


class TokenObtainView(views.TokenObtainPairView):
    @extend_schema(request=TokenObtainPairSerializer, responses={
        200: inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()}),
        **errors(401)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRefreshView(views.TokenRefreshView):
    @extend_schema(request=TokenRefreshSerializer, responses={
        200: inline_serializer("TokenRefreshed", {
            "access": serializers.CharField(),
            "refresh": serializers.CharField(required=False, help_text="A new refresh token (rotation)."),
        }),
        **errors(401)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
