"""/account/...: sign-in, second factor, sign-out and password reset.

Browser tests are written against these paths and names; keep them.
"""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path

from trial.accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    # Open to anyone: a session that has just expired must not turn "Sign out" into a sign-in
    # page that, once passed, sends the user to GET /logout/.
    path("logout/", login_not_required(auth_views.LogoutView.as_view()), name="logout"),
    path("two-factor/", views.TwoFactorVerifyView.as_view(), name="two-factor-verify"),
    path("two-factor/setup/", views.TwoFactorSetupView.as_view(), name="two-factor-setup"),
    # Django's names, which its password reset views redirect to.
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
