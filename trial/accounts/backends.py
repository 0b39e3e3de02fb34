"""Sign-in by e-mail and password (Django's ModelBackend), with the signed-in user's permissions
read in the same statement as the user on every request.

Every signed-in request asks at least one permission (the site selector asks for
trial.view_all_sites), which ModelBackend answers with two more statements: the permissions
granted to the user and those granted to their roles. This backend reads both with the user and
puts them where ModelBackend keeps them for the request (`_perm_cache` on the user object), so
every permission check after that is ModelBackend's own, unchanged: inactive users hold none,
object permissions are not answered here, superusers hold all. The user object lives for one
request, so a role or a permission removed takes effect on the user's next request, as before.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from trial.prepared_queries import PreparedQuery

# Read on every signed-in request: compiled once per process (trial.prepared_queries).
_USER = PreparedQuery(
    lambda user_id: get_user_model()._default_manager.with_permission_names().filter(pk=user_id),
    user_id=int,
)


class UserWithPermissionsBackend(ModelBackend):
    def get_user(self, user_id):
        try:
            (user,) = _USER(user_id=int(user_id))
        except (TypeError, ValueError):  # no such user (or not an id)
            return None
        if not self.user_can_authenticate(user):
            return None
        # A superuser's permissions are every permission (ModelBackend reads them if asked).
        if not user.is_superuser:
            user._perm_cache = set(user.permission_names)
        return user
