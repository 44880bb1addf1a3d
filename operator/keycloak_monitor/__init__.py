"""keycloak-monitor: Keycloak Admin REST API -> Prometheus metrics, as an operator or standalone."""

__version__ = "0.1.0"
