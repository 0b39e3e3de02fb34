from django.urls import path

from trial.data_management import views

app_name = "data_management"
urlpatterns = [
    path("queries/", views.QueryListView.as_view(), name="query-list"),
    path("queries/<int:pk>/", views.QueryDetailView.as_view(), name="query-detail"),
    path(
        "queries/new/<str:model_label>/<int:object_id>/",
        views.QueryRaiseView.as_view(),
        name="query-raise",
    ),
    path("locks/", views.LockListView.as_view(), name="lock-list"),
    path("locks/new/", views.LockCreateView.as_view(), name="lock-create"),
    path("locks/<int:pk>/release/", views.LockReleaseView.as_view(), name="lock-release"),
    path(
        "visits/<int:pk>/verification/",
        views.VerificationView.as_view(scope="visit"),
        name="visit-verification",
    ),
    path(
        "verification/<str:model_label>/<int:object_id>/",
        views.RecordVerificationView.as_view(),
        name="record-verification",
    ),
    path(
        "participants/<int:pk>/verification/",
        views.VerificationView.as_view(scope="participant"),
        name="participant-verification",
    ),
]
