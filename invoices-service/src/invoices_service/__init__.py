"""invoices-service: owns the invoices (canonical model, matching, public and jarvis APIs)."""
