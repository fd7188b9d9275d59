"""The Flask example: ``flask --app examples.flask_app.app run``."""
