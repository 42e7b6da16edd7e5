"""The HTTP surface: the app factory and lifecycle (:mod:`.app`, :mod:`.lifecycle`), the
seed's endpoint (:mod:`.views`, :mod:`.handlers`, answered :mod:`.buffered` or as
:mod:`.streams`), reading requests (:mod:`.forms`), the envelope, auth, the test page and
the OpenAPI document."""
