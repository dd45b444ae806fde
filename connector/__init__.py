"""An IDOL-style document connector: the ACI action endpoint, the queue and the worker."""

__version__ = "0.1.0"
PRODUCT_NAME = "IDOL-style File System Connector"
