"""Events pushed by Keycloak plugins: formats, authentication, and the HTTP receiver."""
