from trial.signatures import views

app_name = "signatures"
urlpatterns = [*views.urlpatterns]
