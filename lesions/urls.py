from lesions import views

app_name = "lesions"
urlpatterns = [*views.urlpatterns]
