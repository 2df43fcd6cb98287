"""The admin site: Django's, with every registered admin (ours and the libraries',
such as the token blacklist's) answering a malformed request with a message instead
of a 500.

Django's admin trusts two things a hand-edited URL or form can break:
- a lookup in the changelist's query string is checked when the query is built, but
  some values only fail when it is compiled, while the page renders
  (`?created_at__year=99999`: "year 99999 is out of range");
- an action's posted ids (`_selected_action`) go to `filter(pk__in=...)`, which
  raises on an id that is not one ("notauuid" for a UUID key).
Here the first gets Django's own answer to a bad lookup (the changelist redirected
with `?e=1`, "Database error"), and ids that cannot be keys are left out, like ids
of objects deleted meanwhile.
"""

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, FullResultSet, ValidationError


class CheckedChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        try:  # compiled here, not while the page renders
            queryset.query.get_compiler(using=queryset.db).as_sql()
        except (EmptyResultSet, FullResultSet):
            pass  # a query that matches nothing or everything: fine
        except (ValueError, OverflowError, ValidationError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


class CheckedInputAdmin(admin.ModelAdmin):
    """Mixed into every admin registered on the site (see `AdminSite.register`)."""

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if issubclass(changelist, CheckedChangeList):
            return changelist
        return type(changelist.__name__, (CheckedChangeList, changelist), {})

    def response_action(self, request, queryset, **kwargs):
        posted = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        keys = [value for value in posted if self.is_key(value)]
        if len(keys) != len(posted):
            post = request.POST.copy()
            post.setlist(helpers.ACTION_CHECKBOX_NAME, keys)
            request.POST = post
        return super().response_action(request, queryset, **kwargs)

    def is_key(self, value) -> bool:
        try:
            self.opts.pk.to_python(value)
        except ValidationError:
            return False
        return True


class AdminSite(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, CheckedInputAdmin):
            admin_class = type(admin_class.__name__, (CheckedInputAdmin, admin_class),
                               {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__})
        return super().register(model_or_iterable, admin_class, **options)
