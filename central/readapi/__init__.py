"""The read API for integrations (tokens with scopes, cursor paging, an OpenAPI document) and
/healthz: central/readapi/routes.py."""
