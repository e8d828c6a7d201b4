"""The REST Email API (v1) client: OAuth2 client credentials, cursor paging, JSON into Arrow."""
