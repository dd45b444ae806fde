#!/usr/bin/env python
"""Django's command-line utility for the connector."""

import os
import sys

if __name__ == "__main__":
    from connector.private_files import apply_umask

    try:
        # Before anything can create a file (connector.private_files).
        apply_umask()
    except ValueError as problem:
        sys.exit(f"Configuration error: {problem}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as problem:
        # A bad or missing setting: one line naming it, not a traceback.
        sys.exit(f"Configuration error: {problem}")
