from django.contrib import admin
from django.urls import include, path

from trial import dashboard_views, health, outbox, staff, timeline, views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("healthz/web", health.healthz_web, name="healthz-web"),
    path("dashboard/", dashboard_views.DashboardView.as_view(), name="dashboard"),
    path("site/select/", views.site_select, name="site-select"),
    path("sites/", views.SiteListView.as_view(), name="site-list"),
    path("sites/<int:pk>/", views.SiteDetailView.as_view(), name="site-detail"),
    path("sites/<int:pk>/edit/", views.SiteUpdateView.as_view(), name="site-edit"),
    path("audit/<str:model_label>/<int:pk>/", views.record_history_view, name="record-history"),
    path("outbox/", outbox.OutboxView.as_view(), name="outbox"),
    path("users/", staff.UserListView.as_view(), name="user-list"),
    path("users/new/", staff.UserInviteView.as_view(), name="user-create"),
    path("users/access-log/", staff.AccessLogView.as_view(), name="access-log"),
    path("users/<int:pk>/", staff.UserDetailView.as_view(), name="user-detail"),
    path("users/<int:pk>/access/", staff.UserAccessView.as_view(), name="user-access"),
    path("users/<int:pk>/deactivate/", staff.UserDeactivateView.as_view(), name="user-deactivate"),
    path("users/<int:pk>/reactivate/", staff.UserReactivateView.as_view(), name="user-reactivate"),
    path(
        "users/<int:pk>/two-factor/reset/",
        staff.UserResetTwoFactorView.as_view(),
        name="user-reset-two-factor",
    ),
    path(
        "users/<int:pk>/set-password-email/",
        staff.UserSendSetPasswordView.as_view(),
        name="user-send-set-password",
    ),
    path("account/", include("trial.accounts.urls")),
    *timeline.urlpatterns,
    path("", include("participants.urls")),
    path("", include("lesions.urls")),
    path("", include("pro_measures.urls")),
    path("", include("trial.reports.urls")),
    path("", include("trial.exports.urls")),
    path("", include("trial.signatures.urls")),
    path("", include("trial.data_management.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "trial.errors.permission_denied"
handler404 = "trial.errors.page_not_found"
handler500 = "trial.errors.server_error"
