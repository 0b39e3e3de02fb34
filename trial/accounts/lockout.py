from django.http import HttpResponse


def lockout_response(request, response, credentials, *args, **kwargs):
    return HttpResponse("Account locked", status=403)
