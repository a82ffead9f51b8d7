"""WSGI entry point: `gunicorn wsgi:app`."""

from payments_site import create_app

app = create_app()
