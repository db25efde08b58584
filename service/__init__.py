"""The service: its core (`core/`), its edges (`http/`, `audit/`, `cli/`), the app factory that puts them together
(`app.py`, `wsgi.py`, `serving.py`: the production server), and the client other services import (`client.py`, `requests` alone)."""
