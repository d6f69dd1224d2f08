"""petition-widget: an embeddable petition signature widget and its small async server."""

__version__ = "0.1.0"
