"""The middlewares that guard every request, outermost first after the metrics: errors as
envelopes, trusted proxies, browsers (host names, cross-site calls), tokens."""
