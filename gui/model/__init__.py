"""The editor's state, free of widgets: the open document with its history, and the active model."""
