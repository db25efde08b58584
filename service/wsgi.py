"""The WSGI entry point the server (`service/serving.py`, granian) serves: `service.wsgi:app`, configured from the environment."""

from service.app import create_app

app = create_app()
