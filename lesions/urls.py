from lesions import dicom_views, views

app_name = "lesions"
urlpatterns = [*views.urlpatterns, *dicom_views.urlpatterns]
