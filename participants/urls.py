from participants import consent_views, safety_views, screening_log, views, visit_views

app_name = "participants"
urlpatterns = [
    *views.urlpatterns,
    *consent_views.urlpatterns,
    *screening_log.urlpatterns,
    *safety_views.urlpatterns,
    *visit_views.urlpatterns,
]
