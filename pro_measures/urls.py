from pro_measures import views

app_name = "pro_measures"
urlpatterns = [*views.urlpatterns]
