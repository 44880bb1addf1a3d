"""The Kubernetes side: KeycloakMonitor resources, their Secrets, status and Events."""

GROUP = "monitoring.keycloak-monitor.io"
VERSION = "v1alpha1"
PLURAL = "keycloakmonitors"
