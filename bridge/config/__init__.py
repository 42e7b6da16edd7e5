"""Settings: declared once in :mod:`.settings`, read by :mod:`.load`, documented by
:mod:`.reference`."""
