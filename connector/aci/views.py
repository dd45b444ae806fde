# Placeholder: the ACI endpoint is being written.
from django.http import HttpResponse


def endpoint(request, *args, **kwargs):
    return HttpResponse("not yet", status=501)


root = endpoint
