"""The WSGI entry point gunicorn serves: `service.wsgi:app`, configured from the environment."""

from service.app import create_app

app = create_app()
