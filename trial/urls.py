from django.contrib import admin
from django.urls import include, path

from trial import health, views

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("site/select/", views.site_select, name="site-select"),
    path("sites/", views.SiteListView.as_view(), name="site-list"),
    path("sites/<int:pk>/", views.SiteDetailView.as_view(), name="site-detail"),
    path("sites/<int:pk>/edit/", views.SiteUpdateView.as_view(), name="site-edit"),
    path("audit/<str:model_label>/<int:pk>/", views.record_history_view, name="record-history"),
    path("account/", include("trial.accounts.urls")),
    path("admin/", admin.site.urls),
]

handler403 = "trial.errors.permission_denied"
handler404 = "trial.errors.page_not_found"
handler500 = "trial.errors.server_error"
