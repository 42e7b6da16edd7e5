"""The API catalogue: what can be called and how each call becomes an argv.

:mod:`.model` is the vocabulary (APIs, arguments and their traits, CLI mappings, plans),
:mod:`.table` the declarative table of the seed's APIs, :mod:`.values` the checks of one
value, :mod:`.planning` the way from request values to an argv, :mod:`.installed` what the
installed Airflow offers, :mod:`.reference` the generated API reference.
"""
