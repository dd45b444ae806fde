# Placeholder: the worker is being written.
from channels.consumer import AsyncConsumer


class FetchConsumer(AsyncConsumer):
    pass
