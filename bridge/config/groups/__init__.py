"""The keys of [rest_api_plugin] by what they are about; :class:`bridge.config.settings.Settings`
puts them together."""
