from pro_measures import staff_views, views

app_name = "pro_measures"
urlpatterns = [*views.urlpatterns, *staff_views.urlpatterns]
